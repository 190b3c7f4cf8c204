// Command memos-verify verifies a bundle file offline, with no server: the signed statement against the keys of
// a trust root's role (or keys given one by one), then every entry against the statement, streaming the file
// once. It prints the verdict (VALID with the cube count and the statement digest, or the stable reason) and
// exits 0 when the bundle is valid, 1 when it is not or cannot be read, 2 on a usage error.
//
//	memos-verify --trust-root ROOT.json [--role node] [--require-key KEYID] [--at RFC3339] [--json] BUNDLE
//	memos-verify --trust-key PUBKEY_B64 [--trust-key ...] [--threshold N] ... BUNDLE
//
// ROOT.json is a trust root's signed envelope, as `memos-grpc trust export --out ROOT.json` writes it. It is an
// anchor: its own signatures are not checked, so it must come from a source already trusted. The limits are a
// server's defaults (verify.DefaultLimits).
package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/memos-grpc/memos-grpc/clients/go/verify"
)

// readBytes is the size of each read of the bundle file. The verifier hashes each chunk as it arrives; large
// reads keep the number of system calls (and of the iterator's hand-overs) low.
const readBytes = 1 << 20

// maxRootFileBytes bounds a trust root file before it is read whole (roots are far smaller).
const maxRootFileBytes = 4 << 20

var roles = []string{"admin", "node", "publisher", "marketplace"}

// repeated is a flag given any number of times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

type options struct {
	trustRoot   string
	trustKeys   repeated
	requireKeys repeated
	role        string
	threshold   int
	at          string
	json        bool
	file        string
}

// result is the verdict as --json prints it.
type result struct {
	File            string `json:"file"`
	Valid           bool   `json:"valid"`
	Reason          string `json:"reason"`
	Message         string `json:"message"`
	Role            string `json:"role"`
	Threshold       int    `json:"threshold"`
	StatementSHA256 string `json:"statement_sha256"`
	CubeCount       int    `json:"cube_count"`
	BlobCount       int    `json:"blob_count"`
	BundleBytes     int64  `json:"bundle_bytes"`
	VerifiedAt      string `json:"verified_at"`
}

// usageError is a command line that cannot run: exit 2.
type usageError struct{ message string }

func (e usageError) Error() string { return e.message }

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	flags := flag.NewFlagSet("memos-verify", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.StringVar(&o.trustRoot, "trust-root", "", "a trust root envelope file (memos-grpc trust export); the keys and threshold of --role")
	flags.Var(&o.trustKeys, "trust-key", "a trusted Ed25519 public key, base64 (repeatable; instead of --trust-root)")
	flags.Var(&o.requireKeys, "require-key", "a key id that must be among the signers (repeatable)")
	flags.StringVar(&o.role, "role", "node", "whose signatures count: "+strings.Join(roles, ", "))
	flags.IntVar(&o.threshold, "threshold", 0, "with --trust-key: distinct trusted keys that must sign (default 1)")
	flags.StringVar(&o.at, "at", "", "verify as of this RFC 3339 time (default: now)")
	flags.BoolVar(&o.json, "json", false, "print the verdict as JSON")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: memos-verify (--trust-root ROOT.json | --trust-key PUBKEY_B64 ...) [options] BUNDLE")
		flags.PrintDefaults()
	}
	// Options may follow the file, as with the Python command: parse again after each positional argument.
	var positional []string
	for {
		if err := flags.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, err
		} else if err != nil {
			return nil, usageError{err.Error()}
		}
		if flags.NArg() == 0 {
			break
		}
		positional = append(positional, flags.Arg(0))
		args = flags.Args()[1:]
	}
	switch {
	case len(positional) != 1:
		return nil, usageError{"give exactly one bundle file"}
	case (o.trustRoot == "") == (len(o.trustKeys) == 0):
		return nil, usageError{"give either --trust-root FILE or one or more --trust-key PUBKEY_B64"}
	case o.trustRoot != "" && o.threshold != 0:
		return nil, usageError{"--threshold is for --trust-key; with --trust-root the role's own threshold applies"}
	case !slices.Contains(roles, o.role):
		return nil, usageError{fmt.Sprintf("--role %q is not one of %s", o.role, strings.Join(roles, ", "))}
	}
	if o.threshold == 0 {
		o.threshold = 1
	}
	o.file = positional[0]
	return o, nil
}

// policy is the trust policy of the options: a root's role, or the given keys.
func policy(o *options) (verify.Policy, error) {
	if o.trustRoot != "" {
		data, err := readSmall(o.trustRoot, maxRootFileBytes)
		if err != nil {
			return verify.Policy{}, err
		}
		root, err := verify.ParseTrustRootEnvelope(data)
		if err != nil {
			return verify.Policy{}, fmt.Errorf("%s: %w", o.trustRoot, err)
		}
		return root.PolicyFor(o.role, o.requireKeys...), nil
	}
	keys := verify.NewKeySet()
	for _, text := range o.trustKeys {
		raw, err := base64.StdEncoding.Strict().DecodeString(text)
		if err != nil {
			return verify.Policy{}, usageError{fmt.Sprintf("--trust-key %q is not padded standard base64", text)}
		}
		if len(raw) != 32 {
			return verify.Policy{}, usageError{fmt.Sprintf("an Ed25519 public key is 32 bytes, not %d", len(raw))}
		}
		keys.Add(verify.TrustedKey{KeyID: verify.KeyID(raw), PublicKey: raw})
	}
	return verify.Policy{Keys: keys, Threshold: o.threshold, RequiredKeyIDs: o.requireKeys}, nil
}

func readSmall(path string, limit int64) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("%s: over %d bytes, too large for a trust root", path, limit)
	}
	return data, err
}

// chunks reads r in readBytes pieces into one buffer: the verifier copies what it keeps (marker, envelope,
// cubes) and only hashes the rest, and asks for the next chunk only once it is done with the previous one.
func chunks(r io.Reader, total *int64, readErr *error) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		buffer := make([]byte, readBytes)
		for {
			n, err := io.ReadFull(r, buffer)
			*total += int64(n)
			if n > 0 && !yield(buffer[:n]) {
				return
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return
			}
			if err != nil {
				*readErr = err
				return
			}
		}
	}
}

func verifyFile(o *options, p verify.Policy, now time.Time) (*result, error) {
	file, err := os.Open(o.file)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	out := &result{File: o.file, Role: o.role, Threshold: p.Threshold, VerifiedAt: now.UTC().Format(time.RFC3339)}
	var readErr error
	report, err := verify.VerifyBundleChunks(chunks(file, &out.BundleBytes, &readErr), p, verify.DefaultLimits, now)
	if readErr != nil {
		return nil, readErr // a file that cannot be read gives no verdict
	}
	var refused *verify.Error
	switch {
	case errors.As(err, &refused):
		out.Reason, out.Message = refused.Reason, refused.Message
	case err != nil:
		return nil, err
	default:
		out.Valid = true
		out.StatementSHA256, out.CubeCount, out.BlobCount = report.StatementSHA256, report.CubeCount, report.BlobCount
	}
	return out, nil
}

func printText(w io.Writer, r *result) {
	if r.Valid {
		fmt.Fprintf(w, "%s: VALID\n", r.File)
	} else {
		fmt.Fprintf(w, "%s: INVALID  %s: %s\n", r.File, r.Reason, r.Message)
	}
	rows := [][2]string{
		{"role", fmt.Sprintf("%s (threshold %d)", r.Role, r.Threshold)},
		{"statement", r.StatementSHA256},
		{"cubes", fmt.Sprint(r.CubeCount)},
		{"blobs", fmt.Sprint(r.BlobCount)},
		{"bundle bytes", fmt.Sprint(r.BundleBytes)},
		{"verified at", r.VerifiedAt},
	}
	for _, row := range rows {
		if r.Valid || row[0] == "role" || row[0] == "verified at" {
			fmt.Fprintf(w, "%-14s%s\n", row[0]+":", row[1])
		}
	}
}

// run is the command: its exit status.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 2
	}
	now := time.Now()
	if o.at != "" {
		if now, err = verify.ParseTime(o.at); err != nil {
			fmt.Fprintf(stderr, "error: --at %q: %v\n", o.at, err)
			return 2
		}
	}
	p, err := policy(o)
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		if errors.As(err, new(usageError)) {
			return 2
		}
		return 1
	}
	r, err := verifyFile(o, p, now)
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	if o.json {
		encoder := json.NewEncoder(stdout)
		encoder.SetIndent("", "  ")
		_ = encoder.Encode(r)
	} else {
		printText(stdout, r)
	}
	if !r.Valid {
		fmt.Fprintf(stderr, "error: the bundle is not valid: %s: %s\n", r.Reason, r.Message)
		return 1
	}
	return 0
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
