package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/registry"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// Options configures a Client. The zero value reads credentials from the
// Docker config, speaks plain HTTP to loopback registries only, and moves
// four layers at a time.
type Options struct {
	// PlainHTTP speaks HTTP, not HTTPS, to every registry.
	PlainHTTP bool
	// Insecure skips TLS certificate verification.
	Insecure bool
	// DockerConfig is the path of a Docker config.json; empty means the
	// default ($DOCKER_CONFIG/config.json or ~/.docker/config.json), read
	// by the caller's environment.
	DockerConfig string
	// Credential overrides the Docker config for every registry.
	Credential *auth.Credential
	// Concurrency is how many blobs move at once (default 4).
	Concurrency int
	// UserAgent is sent with every request.
	UserAgent string
	// Transport replaces the HTTP transport (tests put faults in it).
	Transport http.RoundTripper
}

// Client talks to OCI registries. It is safe for concurrent use.
type Client struct {
	opts  Options
	http  *auth.Client
	creds credentials.Store
}

// New builds a Client. It fails only if the Docker config exists and
// cannot be read.
func New(opts Options) (*Client, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "airlock"
	}
	c := &Client{opts: opts}
	if opts.Credential == nil {
		var store credentials.Store
		var err error
		if opts.DockerConfig != "" {
			store, err = credentials.NewStore(opts.DockerConfig, credentials.StoreOptions{})
		} else {
			store, err = credentials.NewStoreFromDocker(credentials.StoreOptions{})
		}
		if err != nil {
			return nil, fmt.Errorf("reading Docker credentials: %w", err)
		}
		c.creds = store
	}
	rt := opts.Transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 32
		t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		t.ResponseHeaderTimeout = 5 * time.Minute
		t.WriteBufferSize = 256 << 10
		t.ReadBufferSize = 256 << 10
		if opts.Insecure {
			t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // the user asked for it with --insecure
		}
		rt = t
	}
	ac := &auth.Client{
		Client: &http.Client{Transport: retry.NewTransport(rt)},
		Cache:  auth.NewCache(),
		Header: http.Header{"User-Agent": {opts.UserAgent}},
	}
	switch {
	case opts.Credential != nil:
		cred := *opts.Credential
		ac.Credential = func(context.Context, string) (auth.Credential, error) { return cred, nil }
	default:
		ac.Credential = credentials.Credential(c.creds)
	}
	c.http = ac
	return c, nil
}

// plain reports whether ref is spoken to over plain HTTP.
func (c *Client) plain(ref registry.Ref) bool { return c.opts.PlainHTTP || ref.Loopback() }

// scheme is the URL scheme for ref's registry.
func (c *Client) scheme(ref registry.Ref) string {
	if c.plain(ref) {
		return "http"
	}
	return "https"
}

// Repository returns the oras-go repository for ref, configured with this
// client's transport and credentials.
func (c *Client) Repository(ref registry.Ref) (*remote.Repository, error) {
	repo, err := remote.NewRepository(ref.Name())
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", registry.ErrInvalidReference, ref, err)
	}
	repo.Client = c.http
	repo.PlainHTTP = c.plain(ref)
	return repo, nil
}

// mapErr turns oras-go and registry errors into the registry sentinels,
// keeping the original text.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, errdef.ErrNotFound) {
		return fmt.Errorf("%w: %w", registry.ErrNotFound, err)
	}
	if errors.Is(err, auth.ErrBasicCredentialNotFound) {
		return fmt.Errorf("%w: the registry wants credentials and the Docker config has none for it (run docker login HOST): %w", registry.ErrUnauthorized, err)
	}
	var ec *errcode.ErrorResponse
	if errors.As(err, &ec) {
		for _, e := range ec.Errors {
			if e.Code == "DENIED" {
				return fmt.Errorf("%w: %s", registry.ErrDenied, e.Message)
			}
		}
		return statusError(ec.StatusCode, err)
	}
	return err
}

// statusError wraps err in the registry sentinel for an HTTP status, so
// that the client's three ways of talking to a registry (oras-go, the
// streamed upload, the ranged download) fail alike.
func statusError(status int, err error) error {
	switch status {
	case http.StatusNotFound:
		return fmt.Errorf("%w: %w", registry.ErrNotFound, err)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: check the credentials in the Docker config (docker login HOST): %w", registry.ErrUnauthorized, err)
	}
	return err
}

// responseError describes a failed response with the registry's own error
// text and wraps it with statusError.
func responseError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	msg := fmt.Sprintf("%s %s: %s", resp.Request.Method, resp.Request.URL.Redacted(), resp.Status)
	if s := strings.TrimSpace(string(b)); s != "" {
		msg += ": " + s
	}
	return statusError(resp.StatusCode, errors.New(msg))
}
