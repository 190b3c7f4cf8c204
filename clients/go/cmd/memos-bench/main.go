// Command memos-bench times unary calls of the Go client against a running server: sequential GetCube calls of
// one cube, and as many grpc.health.v1 Health.Check calls on the same connection (the floor: the same client and
// transport, next to nothing in the server's handler). It prints every latency as JSON, for bench/clients.py:
//
//	{"client": "go", "get_cube_ns": [...], "health_ns": [...]}
//
// Both kinds alternate in rounds, so that a change of machine load touches both alike. Plaintext only: it is
// for a server on a loopback address.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"github.com/memos-grpc/memos-grpc/clients/go/memos"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// round is how many calls of one kind run before the other kind's turn.
const round = 100

type samples struct {
	Client    string  `json:"client"`
	GetCubeNS []int64 `json:"get_cube_ns"`
	HealthNS  []int64 `json:"health_ns"`
}

func main() {
	target := flag.String("target", "127.0.0.1:50051", "the server's host:port (plaintext)")
	tokenFile := flag.String("token-file", "", "a file holding the bearer token (e.g. DATA_DIR/admin.token)")
	cube := flag.String("cube", "", "the cube GetCube reads (spaces/{space}/cubes/{cube})")
	calls := flag.Int("calls", 2000, "timed calls of each kind")
	warmup := flag.Int("warmup", 200, "untimed calls of each kind first")
	flag.Parse()
	if *cube == "" {
		fmt.Fprintln(os.Stderr, "memos-bench: --cube is required")
		os.Exit(2)
	}
	if err := run(*target, *tokenFile, *cube, *calls, *warmup); err != nil {
		fmt.Fprintln(os.Stderr, "memos-bench:", err)
		os.Exit(1)
	}
}

func run(target, tokenFile, cube string, calls, warmup int) error {
	ctx := context.Background()
	opts := []memos.Option{memos.WithPlaintext()}
	if tokenFile != "" {
		token, err := os.ReadFile(tokenFile)
		if err != nil {
			return err
		}
		opts = append(opts, memos.WithToken(strings.TrimSpace(string(token))))
	}
	client, err := memos.Dial(ctx, target, opts...)
	if err != nil {
		return err
	}
	defer client.Close()
	health := grpc_health_v1.NewHealthClient(client.Conn())
	// The generated stub, through the client's connection and its interceptors: what every typed call uses.
	getCube := func() error { _, err := client.Vault.GetCube(ctx, &pb.GetCubeRequest{Name: cube}); return err }
	check := func() error {
		reply, err := health.Check(ctx, &grpc_health_v1.HealthCheckRequest{})
		if err == nil && reply.Status != grpc_health_v1.HealthCheckResponse_SERVING {
			err = fmt.Errorf("health: %s", reply.Status)
		}
		return err
	}
	for range warmup {
		if err := getCube(); err != nil {
			return fmt.Errorf("GetCube: %w", err)
		}
		if err := check(); err != nil {
			return fmt.Errorf("Health.Check: %w", err)
		}
	}
	out := samples{Client: "go", GetCubeNS: make([]int64, 0, calls), HealthNS: make([]int64, 0, calls)}
	for done := 0; done < calls; done += round {
		n := min(round, calls-done)
		for _, kind := range []struct {
			call func() error
			into *[]int64
		}{{getCube, &out.GetCubeNS}, {check, &out.HealthNS}} {
			for range n {
				started := time.Now()
				if err := kind.call(); err != nil {
					return err
				}
				*kind.into = append(*kind.into, time.Since(started).Nanoseconds())
			}
		}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
