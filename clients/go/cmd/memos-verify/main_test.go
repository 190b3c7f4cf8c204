package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const vectors = "../../../../testdata/vectors/"

// vector is the part of a testdata/vectors bundle file the command needs.
type vector struct {
	Inputs struct {
		Now         string `json:"now"`
		Bundle      string `json:"bundle"`
		Threshold   int    `json:"threshold"`
		TrustedKeys []struct {
			PublicKey string `json:"public_key"`
		} `json:"trusted_keys"`
	} `json:"inputs"`
	Expected struct {
		Valid           bool   `json:"valid"`
		Reason          string `json:"reason"`
		CubeCount       int    `json:"cube_count"`
		BlobCount       int    `json:"blob_count"`
		StatementSHA256 string `json:"statement_sha256"`
	} `json:"expected"`
}

// load reads a bundle vector and writes its bundle to a file; it returns the vector and the file.
func load(t *testing.T, name string) (*vector, string) {
	t.Helper()
	data, err := os.ReadFile(vectors + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	v := &vector{}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
	bundle, err := base64.StdEncoding.DecodeString(v.Inputs.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".tar")
	if err := os.WriteFile(path, bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	return v, path
}

func keyArgs(v *vector) []string {
	var args []string
	for _, k := range v.Inputs.TrustedKeys {
		args = append(args, "--trust-key", k.PublicKey)
	}
	return args
}

func runCommand(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestValidBundle(t *testing.T) {
	v, path := load(t, "bundle-valid")
	code, out, errOut := runCommand(append(keyArgs(v), "--at", v.Inputs.Now, path)...)
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s%s", code, out, errOut)
	}
	for _, want := range []string{path + ": VALID", "statement:    " + v.Expected.StatementSHA256, "cubes:        3", "blobs:        1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestValidBundleJSON(t *testing.T) {
	v, path := load(t, "bundle-valid")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Options after the file are read too, as the Python command reads them.
	code, out, errOut := runCommand(append([]string{path, "--json", "--at", v.Inputs.Now}, keyArgs(v)...)...)
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s%s", code, out, errOut)
	}
	var got result
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	want := result{File: path, Valid: true, Role: "node", Threshold: 1, StatementSHA256: v.Expected.StatementSHA256,
		CubeCount: v.Expected.CubeCount, BlobCount: v.Expected.BlobCount, BundleBytes: info.Size(), VerifiedAt: v.Inputs.Now}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// Tampered bundles are refused with the vector's reason, and the command exits 1.
func TestTamperedBundles(t *testing.T) {
	for _, name := range []string{
		"bundle-digest-mismatch", "bundle-size-mismatch", "bundle-unlisted-entry", "bundle-missing-entry",
		"bundle-envelope-payload-flipped", "bundle-truncated-in-data", "bundle-nonzero-padding",
	} {
		t.Run(name, func(t *testing.T) {
			v, path := load(t, name)
			if v.Expected.Valid || v.Expected.Reason == "" {
				t.Fatalf("%s is not an invalid vector", name)
			}
			code, out, errOut := runCommand(append(keyArgs(v), "--at", v.Inputs.Now, path)...)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
			}
			if !strings.HasPrefix(out, path+": INVALID  "+v.Expected.Reason+": ") {
				t.Errorf("want reason %s, got:\n%s", v.Expected.Reason, out)
			}
			if !strings.Contains(errOut, "the bundle is not valid: "+v.Expected.Reason) {
				t.Errorf("stderr lacks the reason:\n%s", errOut)
			}
		})
	}
}

// writeTrustRoot writes the current root of a trust root vector (admin: the key that signs the bundle vectors;
// node: another key) to a file, as `memos-grpc trust export` would.
func writeTrustRoot(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(vectors + "trust_root_update-add-node-key-valid.json")
	if err != nil {
		t.Fatal(err)
	}
	var update struct {
		Inputs struct {
			CurrentRoot string `json:"current_root"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal(data, &update); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "root.json")
	if err := os.WriteFile(path, []byte(update.Inputs.CurrentRoot), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTrustRootRoles(t *testing.T) {
	v, path := load(t, "bundle-valid")
	root := writeTrustRoot(t)
	code, out, errOut := runCommand("--trust-root", root, "--role", "admin", "--at", v.Inputs.Now, path)
	if code != 0 || !strings.Contains(out, "VALID") {
		t.Fatalf("admin role: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCommand("--trust-root", root, "--at", v.Inputs.Now, path) // the default role: node
	if code != 1 || !strings.Contains(out, "INVALID  BUNDLE_UNTRUSTED_SIGNER: ") {
		t.Fatalf("node role: exit %d\n%s", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	v, path := load(t, "bundle-valid")
	root := writeTrustRoot(t)
	for name, args := range map[string][]string{
		"no keys":          {path},
		"root and keys":    append([]string{"--trust-root", root}, append(keyArgs(v), path)...),
		"root threshold":   {"--trust-root", root, "--threshold", "2", path},
		"two files":        append(keyArgs(v), path, path),
		"unknown role":     append(keyArgs(v), "--role", "buyer", path),
		"key not base64":   {"--trust-key", "not base64!", path},
		"key of 31 bytes":  {"--trust-key", base64.StdEncoding.EncodeToString(make([]byte, 31)), path},
		"time not RFC3339": append(keyArgs(v), "--at", "yesterday", path),
	} {
		if code, out, errOut := runCommand(args...); code != 2 || !strings.Contains(errOut, "error: ") {
			t.Errorf("%s: exit %d, want 2\n%s%s", name, code, out, errOut)
		}
	}
	if code, _, errOut := runCommand(append(keyArgs(v), filepath.Join(t.TempDir(), "absent.tar"))...); code != 1 ||
		!strings.Contains(errOut, "no such file") {
		t.Errorf("a missing file: exit %d, want 1\n%s", code, errOut)
	}
}
