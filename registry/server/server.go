package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/store"
)

// DefaultMaxManifestBytes caps a manifest body. The spec lets registries
// limit it (413); 4 MiB is what distribution and zot accept.
const DefaultMaxManifestBytes = 4 << 20

// TagRule protects the tags matching Tag in the repositories matching
// Repo; both are path.Match patterns ("models/*", "v*", "prod").
type TagRule struct {
	Repo string
	Tag  string
}

// Config is what a Server serves and the rules it enforces at push time.
// The zero value of every field but Blobs and Meta is a documented default.
type Config struct {
	Blobs store.Blobs
	Meta  store.Meta

	// ProtectedTags lists the tags that only Guard may create or move.
	// With no Guard, a protected tag may be created once and is then
	// immutable.
	ProtectedTags []TagRule
	// Guard decides protected tag moves; nil means none is configured.
	Guard registry.TagGuard
	// ImmutableReleaseTags forbids moving a tag that points at a ModelPack
	// release (artifactType application/vnd.cncf.model.manifest.v1+json) to
	// another digest. The CLI turns it on by default.
	ImmutableReleaseTags bool
	// MaxManifestBytes caps a manifest body; 0 means
	// DefaultMaxManifestBytes.
	MaxManifestBytes int64
	// AutoMount lets `POST ?mount=<digest>` without `from` mount any blob
	// the registry holds. Off by default: it would let a caller with push
	// on one repository link content of repositories it cannot read, if it
	// knows the digest.
	AutoMount bool
}

// Validate reports a protection rule whose pattern does not parse. The
// server treats such a rule as matching everything (fail closed), so
// callers should check configs up front.
func (c Config) Validate() error {
	if c.Blobs == nil || c.Meta == nil {
		return fmt.Errorf("registry server: Blobs and Meta are required")
	}
	for _, r := range c.ProtectedTags {
		if _, err := path.Match(r.Repo, ""); err != nil {
			return fmt.Errorf("protected tags: repository pattern %q: %w", r.Repo, err)
		}
		if _, err := path.Match(r.Tag, ""); err != nil {
			return fmt.Errorf("protected tags: tag pattern %q: %w", r.Tag, err)
		}
	}
	return nil
}

// Option configures a Server beyond its Config: what it reports and how
// it reads the clock and the caller.
type Option func(*Server)

// WithLogger sets the access and error log; the default discards.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithRegisterer registers the server's metrics (airlock_registry_*) on
// reg; by default they are collected but not exported.
func WithRegisterer(reg prometheus.Registerer) Option { return func(s *Server) { s.reg = reg } }

// WithNow sets the clock that stamps audit events and upload durations.
func WithNow(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithActor names the caller of a request for the audit log, for example
// from the authentication middleware's context; the default is
// "anonymous".
func WithActor(actor func(*http.Request) string) Option { return func(s *Server) { s.actor = actor } }

// Server is the registry's HTTP API. It is safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	reg     prometheus.Registerer
	now     func() time.Time
	actor   func(*http.Request) string
	metrics *metrics
	routes  map[string]map[string]handler

	// sweep is held for reading by manifest PUTs from their blob check to
	// their commit, and for writing by GC while it deletes blobs.
	sweep sync.RWMutex

	uploadLocks keyedMutex // serialises requests on one upload session
	tagLocks    keyedMutex // serialises check-and-set of one tag
	started     startTimes // upload session start, for upload duration
	bufs        sync.Pool  // *[]byte of copyBufSize
}

var _ http.Handler = (*Server)(nil)

// New returns a Server over cfg.Blobs and cfg.Meta. It panics if the
// metrics cannot be registered (a duplicate registration is a programming
// error).
func New(cfg Config, opts ...Option) *Server {
	s := &Server{
		cfg:   cfg,
		log:   slog.New(slog.DiscardHandler),
		now:   time.Now,
		actor: func(*http.Request) string { return "anonymous" },
	}
	for _, o := range opts {
		o(s)
	}
	if s.cfg.MaxManifestBytes <= 0 {
		s.cfg.MaxManifestBytes = DefaultMaxManifestBytes
	}
	s.metrics = newMetrics(s.reg)
	if s.reg != nil && s.cfg.Blobs != nil {
		s.reg.MustRegister(newStorageCollector(s.cfg.Blobs, s.now))
	}
	s.routes = s.routeTable()
	return s
}

// ServeHTTP routes a request, runs its handler, writes any error in the
// spec's envelope, and records the access log line and metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := requestID()
	cw := &countingWriter{ResponseWriter: w}
	cr := &countingReader{ReadCloser: r.Body}
	r.Body = cr
	cw.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	cw.Header().Set("X-Request-Id", id)

	rt, err := parseRoute(r)
	if err == nil {
		err = s.dispatch(cw, r, rt)
	}
	if err != nil {
		e := apiError(err)
		if !cw.wroteHeader {
			writeError(cw, r, e)
		}
		level := slog.LevelDebug
		if e.Status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(r.Context(), level, "request failed", "request_id", id, "route", rt.name, "code", e.Code, "error", err)
	}
	status := cw.status
	if status == 0 {
		status = http.StatusOK
	}
	elapsed := time.Since(start)
	s.metrics.observe(rt.name, r.Method, status, elapsed, cr.n, cw.n)
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("request_id", id),
		slog.String("method", r.Method),
		slog.String("route", rt.name),
		slog.String("repo", rt.repo),
		slog.Int("status", status),
		slog.Int64("bytes_in", cr.n),
		slog.Int64("bytes_out", cw.n),
		slog.Duration("duration", elapsed),
	)
}

func requestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// handler serves one route's methods.
type handler func(w http.ResponseWriter, r *http.Request, rt route) error

// routeTable maps route names and methods to handlers.
func (s *Server) routeTable() map[string]map[string]handler {
	return map[string]map[string]handler{
		routeBase:      {http.MethodGet: s.base, http.MethodHead: s.base},
		routeCatalog:   {http.MethodGet: s.catalog},
		routeBlob:      {http.MethodGet: s.getBlob, http.MethodHead: s.getBlob, http.MethodDelete: s.deleteBlob},
		routeUploads:   {http.MethodPost: s.startUpload},
		routeUpload:    {http.MethodGet: s.uploadStatus, http.MethodPatch: s.patchUpload, http.MethodPut: s.putUpload, http.MethodDelete: s.cancelUpload},
		routeManifest:  {http.MethodGet: s.getManifest, http.MethodHead: s.getManifest, http.MethodPut: s.putManifest, http.MethodDelete: s.deleteManifest},
		routeTags:      {http.MethodGet: s.tags},
		routeReferrers: {http.MethodGet: s.referrers},
	}
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, rt route) error {
	h, ok := s.routes[rt.name][r.Method]
	if !ok {
		return errorf(CodeUnsupported, http.StatusMethodNotAllowed, "method %s not allowed on %s", r.Method, rt.name)
	}
	return h(w, r, rt)
}

func (s *Server) base(w http.ResponseWriter, _ *http.Request, _ route) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("{}"))
	return nil
}
