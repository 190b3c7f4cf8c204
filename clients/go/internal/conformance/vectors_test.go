package conformance

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// Every vector of a kind the Go verifier implements, whole and in 512-, 97- and 1-byte chunks, must reach
// exactly the expected outcome: the verdict, the reason, and the digests, counts and other fields beside a valid
// one.
func TestVectors(t *testing.T) {
	files, err := filepath.Glob("../../../../testdata/vectors/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors found: %v", err)
	}
	sort.Strings(files)
	passed := map[string]int{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var vector Vector
		if err := json.Unmarshal(data, &vector); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var raw struct {
			Expected map[string]any `json:"expected"`
		}
		decoder := json.NewDecoder(bytes.NewReader(data))
		decoder.UseNumber() // a log index reaches 2^63 - 2, past what a float64 holds
		if err := decoder.Decode(&raw); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if !Supported(vector.Kind) {
			continue
		}
		chunks := []int{0}
		if vector.Kind == "bundle" {
			chunks = []int{0, 512, 97, 1}
		}
		ok := true
		for _, chunk := range chunks {
			got := Run(vector, chunk)
			want := vector.Expected
			if got.Valid != want.Valid || got.Reason != want.Reason || !sameExtras(got, want) ||
				!sameOther(t, vector.Kind, got, raw.Expected) {
				t.Errorf("%s (chunk %d): got %+v, want %+v", vector.Name, chunk, show(got), show(want))
				ok = false
			}
		}
		if ok {
			passed[vector.Kind]++
		}
	}
	t.Logf("vectors passed per kind: %v", passed)
	for kind := range runners {
		if passed[kind] == 0 {
			t.Errorf("no vector of the kind %s ran", kind)
		}
	}
	if len(passed) < 3+len(runners) {
		t.Errorf("expected vectors of %d kinds, ran %v", 3+len(runners), passed)
	}
}

func sameExtras(got, want Outcome) bool {
	eqInt := func(a, b *int) bool { return b == nil || (a != nil && *a == *b) }
	return (want.PayloadSHA256 == "" || got.PayloadSHA256 == want.PayloadSHA256) &&
		(want.StatementSHA256 == "" || got.StatementSHA256 == want.StatementSHA256) &&
		eqInt(got.CubeCount, want.CubeCount) && eqInt(got.BlobCount, want.BlobCount) &&
		(want.Version == nil || (got.Version != nil && *got.Version == *want.Version))
}

// sameOther compares, for the kinds in runners, every expected field beside valid and reason with Extra, both
// through JSON, and that Extra holds no field the vector does not.
func sameOther(t *testing.T, kind string, got Outcome, expected map[string]any) bool {
	if _, ok := runners[kind]; !ok {
		return true
	}
	want := map[string]any{}
	for name, value := range expected {
		if name != "valid" && name != "reason" {
			want[name] = value
		}
	}
	encoded, err := json.Marshal(got.Extra)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]any{}
	decoder := json.NewDecoder(bytes.NewReader(encoded))
	decoder.UseNumber()
	if err := decoder.Decode(&have); err != nil {
		t.Fatal(err)
	}
	return (len(have) == 0 && len(want) == 0) || reflect.DeepEqual(have, want)
}

func show(o Outcome) string {
	encoded, _ := json.Marshal(o)
	return strings.TrimSpace(string(encoded))
}
