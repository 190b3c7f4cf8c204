// Package conformance runs testdata/vectors files through the Go verifier, and serves the conformance protocol
// every implementation speaks: one JSON request a line on stdin, one JSON answer a line on stdout.
package conformance

import (
	"bufio"
	"bytes"
	"encoding/base64"
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

type trustedKeyInput struct {
	KeyID     string  `json:"key_id"`
	PublicKey *string `json:"public_key"`
	NotBefore *string `json:"not_before"`
	NotAfter  *string `json:"not_after"`
	RevokedAt *string `json:"revoked_at"`
}

type inputs struct {
	Now            *string           `json:"now"`
	TrustedKeys    []trustedKeyInput `json:"trusted_keys"`
	Threshold      *int              `json:"threshold"`
	RequiredKeyIDs []string          `json:"required_key_ids"`
	Envelope       *string           `json:"envelope"`
	Bundle         *string           `json:"bundle"`
	Limits         *struct {
		MaxEntryBytes    *int64 `json:"max_entry_bytes"`
		MaxBundleBytes   *int64 `json:"max_bundle_bytes"`
		MaxEntries       *int64 `json:"max_entries"`
		MaxEnvelopeBytes *int64 `json:"max_envelope_bytes"`
		MaxCubeBytes     *int64 `json:"max_cube_bytes"`
	} `json:"limits"`
	CurrentRoot  *string `json:"current_root"`
	ProposedRoot *string `json:"proposed_root"`
}

func need[T any](value *T, name string) T {
	if value == nil {
		panic(badRequest{fmt.Errorf("inputs has no %s", name)})
	}
	return *value
}

func timeInput(text string, name string) time.Time {
	when, err := verify.ParseTime(text)
	if err != nil {
		panic(badRequest{fmt.Errorf("inputs.%s: %v", name, err)})
	}
	return when
}

func (in *inputs) policy() verify.Policy {
	keys := verify.NewKeySet()
	for i, k := range in.TrustedKeys {
		public, err := base64.StdEncoding.Strict().DecodeString(need(k.PublicKey, "trusted_keys[].public_key"))
		if err != nil {
			panic(badRequest{fmt.Errorf("trusted_keys[%d].public_key: %v", i, err)})
		}
		key := verify.TrustedKey{KeyID: k.KeyID, PublicKey: public}
		for _, f := range []struct {
			text *string
			into **time.Time
		}{{k.NotBefore, &key.NotBefore}, {k.NotAfter, &key.NotAfter}, {k.RevokedAt, &key.RevokedAt}} {
			if f.text != nil {
				when := timeInput(*f.text, "trusted_keys[].time")
				*f.into = &when
			}
		}
		keys.Add(key)
	}
	return verify.Policy{Keys: keys, Threshold: need(in.Threshold, "threshold"), RequiredKeyIDs: in.RequiredKeyIDs}
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
	var in inputs
	decoder := json.NewDecoder(bytes.NewReader(vector.Inputs))
	if err := decoder.Decode(&in); err != nil || chunk < 0 {
		return Outcome{Reason: BadRequest}
	}
	now := timeInput(need(in.Now, "now"), "now")
	switch vector.Kind {
	case "envelope":
		payload, err := verify.VerifyStatementEnvelope([]byte(need(in.Envelope, "envelope")), in.policy(), now)
		if err != nil {
			return failed(err)
		}
		return Outcome{Valid: true, PayloadSHA256: sha256Hex(payload)}
	case "bundle":
		data, err := base64.StdEncoding.Strict().DecodeString(need(in.Bundle, "bundle"))
		if err != nil || in.Limits == nil {
			return Outcome{Reason: BadRequest}
		}
		l := in.Limits
		limits := verify.Limits{
			MaxEntryBytes:    need(l.MaxEntryBytes, "limits.max_entry_bytes"),
			MaxBundleBytes:   need(l.MaxBundleBytes, "limits.max_bundle_bytes"),
			MaxEntries:       need(l.MaxEntries, "limits.max_entries"),
			MaxEnvelopeBytes: need(l.MaxEnvelopeBytes, "limits.max_envelope_bytes"),
			MaxCubeBytes:     need(l.MaxCubeBytes, "limits.max_cube_bytes"),
		}
		report, err := verify.VerifyBundleChunks(Chunks(data, chunk), in.policy(), limits, now)
		if err != nil {
			return failed(err)
		}
		cubes, blobs := report.CubeCount, report.BlobCount
		return Outcome{Valid: true, StatementSHA256: report.StatementSHA256, CubeCount: &cubes, BlobCount: &blobs}
	default: // trust_root_update
		current, err := verify.ParseEnvelope([]byte(need(in.CurrentRoot, "current_root")))
		if err != nil {
			return Outcome{Reason: BadRequest}
		}
		root, err := verify.ParseTrustRoot(current.Payload)
		if err != nil {
			return failed(err)
		}
		proposed, err := verify.VerifyRootUpdate(root, []byte(need(in.ProposedRoot, "proposed_root")), now)
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

type request struct {
	ID     *string         `json:"id"`
	Vector json.RawMessage `json:"vector"`
	Chunk  *int            `json:"chunk"`
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
		if len(bytes.TrimSpace(line)) == 0 {
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
	var req request
	if err := json.Unmarshal(line, &req); err != nil || req.ID == nil {
		id := ""
		if req.ID != nil {
			id = *req.ID
		}
		return answer{ID: id, Reason: BadRequest}
	}
	var vector Vector
	if err := json.Unmarshal(req.Vector, &vector); err != nil || vector.Kind == "" || vector.Inputs == nil {
		return answer{ID: *req.ID, Reason: BadRequest}
	}
	chunk := 0
	if req.Chunk != nil {
		chunk = *req.Chunk
	}
	outcome := Run(vector, chunk)
	return answer{ID: *req.ID, Valid: outcome.Valid, Reason: outcome.Reason}
}
