//go:build live

package live

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"github.com/memos-grpc/memos-grpc/clients/go/memos"
	"github.com/memos-grpc/memos-grpc/clients/go/verify"
	"google.golang.org/grpc/codes"
)

// callTimeout bounds each test's calls: a server that stops answering fails the test instead of hanging it.
const callTimeout = 3 * time.Minute

// serverName is the name on the test servers' certificate (they listen on 127.0.0.1).
const serverName = "127.0.0.1"

// node is one server of the topology file.
type node struct {
	Address    string `json:"address"`
	AdminToken string `json:"admin_token"`
	LogOrigin  string `json:"log_origin"`
	LogVKey    string `json:"log_vkey"`
	// WitnessVKey is the node's witness key (C2SP vkey), when the topology file gives it.
	WitnessVKey string `json:"witness_vkey"`
}

// topology is the file MEMOS_LIVE names (tests/interop/_live.py).
type topology struct {
	CAFile         string `json:"ca_file"`
	ClientCertFile string `json:"client_cert_file"`
	ClientKeyFile  string `json:"client_key_file"`
	Main           node   `json:"main"`
	Market         node   `json:"market"`
}

var (
	loadOnce sync.Once
	loaded   *topology
	loadErr  error
	// run is this run's suffix for every name the suite creates.
	run = newRunSuffix()
	// shared holds clients that outlive one test (the published release's); TestMain closes them.
	sharedMu sync.Mutex
	shared   []*memos.Client
)

func TestMain(m *testing.M) {
	code := m.Run()
	sharedMu.Lock()
	for _, client := range shared {
		client.Close()
	}
	sharedMu.Unlock()
	os.Exit(code)
}

func newRunSuffix() string {
	random := make([]byte, 3)
	if _, err := rand.Read(random); err != nil {
		panic(err)
	}
	return strconv.FormatInt(time.Now().Unix(), 36) + hex.EncodeToString(random)
}

// id is a resource id unique to this run: "go-<what>-<run>".
func id(what string) string { return "go-" + what + "-" + run }

// live reads the topology file; without MEMOS_LIVE the test fails (it never skips: the tag asks for servers).
func live(t *testing.T) *topology {
	t.Helper()
	loadOnce.Do(func() {
		path := os.Getenv("MEMOS_LIVE")
		if path == "" {
			loadErr = errors.New("MEMOS_LIVE is not set: the live suite needs the topology file that " +
				"`python -m tests.interop._live FILE` writes (MEMOS_LIVE=FILE go test -tags live ./live/...)")
			return
		}
		data, err := os.ReadFile(path)
		if err != nil {
			loadErr = fmt.Errorf("MEMOS_LIVE=%s: %w", path, err)
			return
		}
		var topo topology
		if err := json.Unmarshal(data, &topo); err != nil {
			loadErr = fmt.Errorf("MEMOS_LIVE=%s is not the topology JSON: %w", path, err)
			return
		}
		if topo.Main.Address == "" || topo.Market.Address == "" || topo.CAFile == "" {
			loadErr = fmt.Errorf("MEMOS_LIVE=%s names no main or market address, or no CA file", path)
			return
		}
		loaded = &topo
	})
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

// ctx is the test's context, bounded by callTimeout.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), callTimeout)
	t.Cleanup(cancel)
	return c
}

// dialMain connects to main over mTLS (the test CA's client certificate) with token ("" sends none).
func (tp *topology) dialMain(t *testing.T, token string) *memos.Client {
	t.Helper()
	opts := []memos.Option{memos.WithCAFile(tp.CAFile), memos.WithServerName(serverName),
		memos.WithClientCert(tp.ClientCertFile, tp.ClientKeyFile)}
	if token != "" {
		opts = append(opts, memos.WithToken(token))
	}
	return dial(t, tp.Main.Address, opts)
}

// dialMarket connects to the market over TLS with token ("" sends none).
func (tp *topology) dialMarket(t *testing.T, token string) *memos.Client {
	t.Helper()
	opts := []memos.Option{memos.WithCAFile(tp.CAFile), memos.WithServerName(serverName)}
	if token != "" {
		opts = append(opts, memos.WithToken(token))
	}
	return dial(t, tp.Market.Address, opts)
}

// dial connects; t nil keeps the client open past the test (closed by TestMain).
func dial(t *testing.T, address string, opts []memos.Option) *memos.Client {
	client, err := memos.Dial(context.Background(), address, opts...)
	if err != nil {
		if t == nil {
			panic(err)
		}
		t.Fatalf("dialing %s: %v", address, err)
	}
	if t == nil {
		sharedMu.Lock()
		shared = append(shared, client)
		sharedMu.Unlock()
	} else {
		t.Cleanup(func() { client.Close() })
	}
	return client
}

// principal creates a principal (a user) with the admin client and returns its name and a token of it.
func principal(t *testing.T, c context.Context, admin *memos.Client, principalID string) (string, string) {
	t.Helper()
	created := must(admin.CreatePrincipal(c, principalID, &pb.Principal{Kind: pb.Principal_KIND_USER}))(t)
	if created.GetName() != "principals/"+principalID {
		t.Fatalf("CreatePrincipal(%s) named it %q", principalID, created.GetName())
	}
	credential := must(admin.CreateCredential(c, created.GetName(), nil))(t)
	if credential.GetToken() == "" {
		t.Fatalf("CreateCredential for %s returned no token", created.GetName())
	}
	return created.GetName(), credential.GetToken()
}

// must returns the value of a call that must succeed: must(call(...))(t) fails the test on its error.
func must[T any](value T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return value
	}
}

// check fails the test on err.
func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

// refused asserts err is the server's refusal with code and the ErrorInfo reason, and returns it.
func refused(t *testing.T, err error, code codes.Code, reason string) *memos.Error {
	t.Helper()
	var refusal *memos.Error
	if !errors.As(err, &refusal) {
		t.Fatalf("wanted a refusal %v %s, got %v", code, reason, err)
	}
	if refusal.Code != code || refusal.Reason != reason {
		t.Fatalf("wanted a refusal %v %s, got %v %s: %s", code, reason, refusal.Code, refusal.Reason, refusal.Message)
	}
	return refusal
}

// collect ranges over an iterator, failing the test on its error.
func collect[T any](t *testing.T, seq func(func(T, error) bool)) []T {
	t.Helper()
	var items []T
	for item, err := range seq {
		check(t, err)
		items = append(items, item)
	}
	return items
}

// trustRoot reads a node's trust root and parses its signed envelope offline.
func trustRoot(t *testing.T, c context.Context, client *memos.Client) (*pb.TrustRoot, *verify.TrustRoot) {
	t.Helper()
	root := must(client.GetTrustRoot(c))(t)
	parsed, err := verify.ParseTrustRootEnvelope(root.GetSignedEnvelope())
	if err != nil {
		t.Fatalf("the trust root's envelope does not verify offline: %v", err)
	}
	if parsed.Version != root.GetVersion() {
		t.Fatalf("the trust root says version %d, its envelope %d", root.GetVersion(), parsed.Version)
	}
	return root, parsed
}

// plaintext is a request for a plaintext cube.
func plaintext(parent, cubeID, text string, tags ...string) *pb.CreateCubeRequest {
	return &pb.CreateCubeRequest{Parent: parent, CubeId: cubeID, Cube: &pb.MemCube{
		Payload: &pb.MemCube_Plaintext{Plaintext: &pb.PlaintextPayload{Text: text}}, Tags: tags}}
}
