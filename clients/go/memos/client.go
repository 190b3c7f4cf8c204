// Package memos is the Go client of a memos-grpc server: Dial with TLS, mTLS and a bearer token, and a typed
// method for every RPC of every service (one file per service), with the context first, iterators (iter.Seq2)
// for paged lists and server streams, and io.Reader / io.Writer for bundles, payloads and releases. The
// generated stubs stay reachable (Client.Vault, Client.Marketplace, ...) for call options and raw requests.
package memos

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	pb "github.com/memos-grpc/memos-grpc/clients/go/gen/memos/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Client holds one connection and a stub per service; its methods wrap the stubs.
type Client struct {
	conn         *grpc.ClientConn
	Governance   pb.GovernanceServiceClient
	Vault        pb.VaultServiceClient
	Interchange  pb.InterchangeServiceClient
	Scheduler    pb.SchedulerServiceClient
	Marketplace  pb.MarketplaceServiceClient
	HeldLicenses pb.HeldLicenseServiceClient
	Transparency pb.TransparencyLogServiceClient
	Witness      pb.WitnessServiceClient
}

type options struct {
	caFile, certFile, keyFile string
	serverName                string
	token                     string
	plaintext                 bool
	dialOptions               []grpc.DialOption
}

// Option configures Dial.
type Option func(*options)

// WithCAFile trusts the PEM CA certificates in path for the server's certificate (else the system roots).
func WithCAFile(path string) Option { return func(o *options) { o.caFile = path } }

// WithClientCert presents a client certificate (mTLS) from PEM files.
func WithClientCert(certFile, keyFile string) Option {
	return func(o *options) { o.certFile, o.keyFile = certFile, keyFile }
}

// WithServerName overrides the name the server's certificate is checked against.
func WithServerName(name string) Option { return func(o *options) { o.serverName = name } }

// WithToken sends "authorization: Bearer <token>" on every call.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithPlaintext connects without TLS (a server on localhost started without certificates). A token is then sent
// in the clear: only ever on a loopback address.
func WithPlaintext() Option { return func(o *options) { o.plaintext = true } }

// WithDialOptions adds grpc.DialOptions (keepalive, interceptors, ...).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}

type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

// Dial connects to target ("host:port"). TLS is the default; WithPlaintext turns it off. The connection is made
// lazily: ctx bounds nothing yet and is kept for symmetry with the calls.
func Dial(ctx context.Context, target string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dial := []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(unaryErrors),
		grpc.WithChainStreamInterceptor(streamErrors),
	}
	if o.plaintext {
		if o.caFile != "" || o.certFile != "" {
			return nil, fmt.Errorf("memos: WithPlaintext and TLS options exclude each other")
		}
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		config, err := tlsConfig(o)
		if err != nil {
			return nil, err
		}
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(config)))
	}
	if o.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer{o.token, !o.plaintext}))
	}
	conn, err := grpc.NewClient(target, append(dial, o.dialOptions...)...)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn:         conn,
		Governance:   pb.NewGovernanceServiceClient(conn),
		Vault:        pb.NewVaultServiceClient(conn),
		Interchange:  pb.NewInterchangeServiceClient(conn),
		Scheduler:    pb.NewSchedulerServiceClient(conn),
		Marketplace:  pb.NewMarketplaceServiceClient(conn),
		HeldLicenses: pb.NewHeldLicenseServiceClient(conn),
		Transparency: pb.NewTransparencyLogServiceClient(conn),
		Witness:      pb.NewWitnessServiceClient(conn),
	}, nil
}

func tlsConfig(o options) (*tls.Config, error) {
	config := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.serverName}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("memos: reading the CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("memos: %s holds no PEM certificate", o.caFile)
		}
		config.RootCAs = pool
	}
	if o.certFile != "" || o.keyFile != "" {
		pair, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, fmt.Errorf("memos: reading the client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}

// Conn is the underlying connection (for services this package does not list, e.g. grpc.health.v1).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }
