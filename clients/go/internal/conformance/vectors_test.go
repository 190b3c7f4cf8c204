package conformance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Every vector of a kind the Go verifier implements, whole and in 512-, 97- and 1-byte chunks, must reach
// exactly the expected outcome: the verdict, the reason, and the digests and counts beside a valid one.
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
			if got.Valid != want.Valid || got.Reason != want.Reason || !sameExtras(got, want) {
				t.Errorf("%s (chunk %d): got %+v, want %+v", vector.Name, chunk, show(got), show(want))
				ok = false
			}
		}
		if ok {
			passed[vector.Kind]++
		}
	}
	t.Logf("vectors passed per kind: %v", passed)
	if len(passed) < 3 {
		t.Errorf("expected vectors of three kinds, ran %v", passed)
	}
}

func sameExtras(got, want Outcome) bool {
	eqInt := func(a, b *int) bool { return b == nil || (a != nil && *a == *b) }
	return (want.PayloadSHA256 == "" || got.PayloadSHA256 == want.PayloadSHA256) &&
		(want.StatementSHA256 == "" || got.StatementSHA256 == want.StatementSHA256) &&
		eqInt(got.CubeCount, want.CubeCount) && eqInt(got.BlobCount, want.BlobCount) &&
		(want.Version == nil || (got.Version != nil && *got.Version == *want.Version))
}

func show(o Outcome) string {
	encoded, _ := json.Marshal(o)
	return strings.TrimSpace(string(encoded))
}
