// Package conformance runs testdata/vectors files through the Go verifier, and serves the conformance protocol
// every implementation speaks: one JSON request a line on stdin, one JSON answer a line on stdout.
package conformance

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"runtime/debug"
	"time"

	"github.com/memos-grpc/memos-grpc/clients/go/verify"
)

// The answers that are not a verifier's reason.
const (
	BadRequest      = "BAD_REQUEST"
	UnsupportedKind = "UNSUPPORTED_KIND"
	InternalError   = "INTERNAL_ERROR"
)

// Vector is one testdata/vectors file. The harness reads it with encoding/json: it is test data, not protocol
// input (the protocol's JSON inside it, envelopes and roots, goes to the verifier's own strict decoder).
type Vector struct {
	Name     string          `json:"name"`
	Kind     string          `json:"kind"`
	Inputs   json.RawMessage `json:"inputs"`
	Expected Outcome         `json:"expected"`
}

// Outcome is a verdict with what the vectors compare beside it.
type Outcome struct {
	Valid           bool   `json:"valid"`
	Reason          string `json:"reason"`
	PayloadSHA256   string `json:"payload_sha256,omitempty"`
	StatementSHA256 string `json:"statement_sha256,omitempty"`
	CubeCount       *int   `json:"cube_count,omitempty"`
	BlobCount       *int   `json:"blob_count,omitempty"`
	Version         *int64 `json:"version,omitempty"`
	// Extra is what a valid outcome of the other kinds holds beside the verdict, by the vector's field names.
	Extra map[string]any `json:"extra,omitempty"`
}

// runners are the kinds read from a plain object of inputs, without a trust policy.
var runners = map[string]func(fields) Outcome{
	"merkle":      runMerkle,
	"entry":       runEntry,
	"note":        runNote,
	"checkpoint":  runCheckpoint,
	"cosignature": runCosignature,
	"tlog-policy": runTlogPolicy,
	"tlog-proof":  runTlogProof,
	"grant":       runGrant,
	"terms":       runTerms,
}

// Supported reports whether this implementation runs vectors of kind.
func Supported(kind string) bool {
	switch kind {
	case "envelope", "bundle", "trust_root_update":
		return true
	}
	_, ok := runners[kind]
	return ok
}

type badRequest struct{ error }

func timeInput(text string, name string) time.Time {
	when, err := verify.ParseTime(text)
	if err != nil {
		panic(badRequest{fmt.Errorf("inputs.%s: %v", name, err)})
	}
	return when
}

// policy reads trusted_keys, threshold and required_key_ids, as the reference does.
func (f fields) policy() verify.Policy {
	keys := verify.NewKeySet()
	for _, item := range f.list("trusted_keys") {
		members, ok := item.(map[string]any)
		if !ok {
			panic(badRequest{fmt.Errorf("inputs.trusted_keys holds an item that is not an object")})
		}
		in := fields(members)
		key := verify.TrustedKey{
			KeyID:     in.text("key_id"),
			PublicKey: decodeB64(in.get("public_key"), "trusted_keys[].public_key"),
		}
		for _, f := range []struct {
			name string
			into **time.Time
		}{{"not_before", &key.NotBefore}, {"not_after", &key.NotAfter}, {"revoked_at", &key.RevokedAt}} {
			if in.has(f.name) {
				when := timeInput(in.text(f.name), "trusted_keys[]."+f.name)
				*f.into = &when
			}
		}
		keys.Add(key)
	}
	threshold := f.count("threshold")
	return verify.Policy{Keys: keys, Threshold: int(threshold), RequiredKeyIDs: f.texts("required_key_ids")}
}

func failed(err error) Outcome {
	var verr *verify.Error
	if errors.As(err, &verr) {
		return Outcome{Reason: verr.Reason}
	}
	panic(err)
}

// Run runs one vector; chunk 0 hands a bundle over whole, N > 0 in pieces of N bytes. A malformed vector is
// BAD_REQUEST, a kind not implemented UNSUPPORTED_KIND, a verifier panic INTERNAL_ERROR (and its stack on stderr).
func Run(vector Vector, chunk int) (outcome Outcome) {
	if chunk < 0 {
		return Outcome{Reason: BadRequest}
	}
	if !Supported(vector.Kind) {
		return Outcome{Reason: UnsupportedKind}
	}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(badRequest); ok {
				outcome = Outcome{Reason: BadRequest}
				return
			}
			fmt.Fprintf(os.Stderr, "memos-conformance: %s: %v\n%s", vector.Name, r, debug.Stack())
			outcome = Outcome{Reason: InternalError}
		}
	}()
	if runner, ok := runners[vector.Kind]; ok {
		return runner(decodeFields(vector.Inputs))
	}
	in := decodeFields(vector.Inputs)
	now := timeInput(in.text("now"), "now")
	switch vector.Kind {
	case "envelope":
		payload, err := verify.VerifyStatementEnvelope([]byte(in.text("envelope")), in.policy(), now)
		if err != nil {
			return failed(err)
		}
		return Outcome{Valid: true, PayloadSHA256: sha256Hex(payload)}
	case "bundle":
		data := in.bytes("bundle")
		l := in.object("limits")
		limits := verify.Limits{
			MaxEntryBytes:    l.count("max_entry_bytes"),
			MaxBundleBytes:   l.count("max_bundle_bytes"),
			MaxEntries:       l.count("max_entries"),
			MaxEnvelopeBytes: l.count("max_envelope_bytes"),
			MaxCubeBytes:     l.count("max_cube_bytes"),
		}
		report, err := verify.VerifyBundleChunks(Chunks(data, chunk), in.policy(), limits, now)
		if err != nil {
			return failed(err)
		}
		cubes, blobs := report.CubeCount, report.BlobCount
		return Outcome{Valid: true, StatementSHA256: report.StatementSHA256, CubeCount: &cubes, BlobCount: &blobs}
	default: // trust_root_update
		current, err := verify.ParseEnvelope([]byte(in.text("current_root")))
		if err != nil {
			return Outcome{Reason: BadRequest}
		}
		// The current root is the anchor the caller already trusts: one that does not parse is a bad request.
		root, err := verify.ParseTrustRoot(current.Payload)
		if err != nil {
			return Outcome{Reason: BadRequest}
		}
		proposed, err := verify.VerifyRootUpdate(root, []byte(in.text("proposed_root")), now)
		if err != nil {
			return failed(err)
		}
		version := proposed.Version
		return Outcome{Valid: true, Version: &version}
	}
}

// Chunks splits data into pieces of size bytes (whole when size is 0).
func Chunks(data []byte, size int) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		if size <= 0 {
			yield(data)
			return
		}
		for start := 0; start < len(data); start += size {
			if !yield(data[start:min(start+size, len(data))]) {
				return
			}
		}
	}
}

type answer struct {
	ID     string `json:"id"`
	Valid  bool   `json:"valid"`
	Reason string `json:"reason"`
}

// Serve answers requests from in on out until in ends; nothing a request holds stops it.
func Serve(in io.Reader, out io.Writer) error {
	scanner := bufio.NewScanner(in)
	scanner.Buffer(make([]byte, 1<<20), 1<<30)
	writer := bufio.NewWriter(out)
	for scanner.Scan() {
		line := scanner.Bytes()
		// A blank line (JSON whitespace only) is not a request, as in every implementation.
		if len(bytes.Trim(line, " \t\r\n")) == 0 {
			continue
		}
		reply := handle(line)
		encoded, _ := json.Marshal(reply)
		writer.Write(append(encoded, '\n'))
		if err := writer.Flush(); err != nil {
			return err
		}
	}
	return scanner.Err()
}

func handle(line []byte) answer {
	id, vector, chunk, ok := readRequest(line)
	if !ok {
		return answer{ID: id, Reason: BadRequest}
	}
	outcome := Run(vector, chunk)
	return answer{ID: id, Valid: outcome.Valid, Reason: outcome.Reason}
}
