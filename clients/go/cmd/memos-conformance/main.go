// Command memos-conformance is the Go implementation of the protocol's conformance interface: it reads
// {"id", "vector", "chunk"} requests a line on stdin and writes {"id", "valid", "reason"} a line on stdout.
package main

import (
	"fmt"
	"os"

	"github.com/memos-grpc/memos-grpc/clients/go/internal/conformance"
)

func main() {
	if err := conformance.Serve(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "memos-conformance:", err)
		os.Exit(1)
	}
}
