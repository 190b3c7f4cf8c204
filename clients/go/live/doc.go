// Package live holds the Go client's live suite: tests, built only with the tag "live", that drive two real
// memos-grpc servers (a marketplace node over TLS, and a node over mTLS that trusts, follows and witnesses it)
// through every RPC of every service, checking what comes back, offline with package verify where it is signed.
//
//	MEMOS_LIVE=<topology file> go test -tags live -count=1 ./live/...
//
// The topology file is the JSON that `python -m tests.interop._live FILE` writes (tests/interop/_live.py). Without
// MEMOS_LIVE every test of the suite fails, saying so. Every name the suite creates starts with "go-" and carries a
// suffix of the run, so that runs, and other clients' suites on the same servers, do not collide.
package live
