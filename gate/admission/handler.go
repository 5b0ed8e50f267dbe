package admission

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Handler serves AdmissionReview v1 over HTTP (POST, JSON). A request
// that is not an AdmissionReview gets a 4xx with the reason; an answer is
// always an AdmissionReview with the request's UID. Its Checker can be
// replaced while it serves (a reloaded config).
type Handler struct {
	checker atomic.Pointer[Checker]
	Metrics *Metrics
	Logger  *slog.Logger
}

// NewHandler serves c's answers.
func NewHandler(c *Checker, m *Metrics, log *slog.Logger) *Handler {
	h := &Handler{Metrics: m, Logger: log}
	h.checker.Store(c)
	return h
}

// SetChecker makes c answer from the next request on.
func (h *Handler) SetChecker(c *Checker) { h.checker.Store(c) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "airlock admission: POST an AdmissionReview (admission.k8s.io/v1)", http.StatusMethodNotAllowed)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		http.Error(w, "airlock admission: the body must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	c := h.checker.Load()
	limit := c.cfg.MaxRequestBytes
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.bad(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is over %d bytes (max_request_bytes)", limit))
			return
		}
		h.bad(w, http.StatusBadRequest, fmt.Sprintf("reading the request: %v", err))
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		h.bad(w, http.StatusBadRequest, fmt.Sprintf("the body is not an AdmissionReview: %v", err))
		return
	}
	switch {
	case review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview":
		h.bad(w, http.StatusBadRequest, fmt.Sprintf("apiVersion %q kind %q: only admission.k8s.io/v1 AdmissionReview is served", review.APIVersion, review.Kind))
		return
	case review.Request == nil:
		h.bad(w, http.StatusBadRequest, "the AdmissionReview has no request")
		return
	case review.Request.UID == "":
		h.bad(w, http.StatusBadRequest, "the AdmissionReview's request has no uid")
		return
	}
	res := h.review(r, c, review.Request)
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: res}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil && h.Logger != nil {
		h.Logger.Warn("writing the admission answer", "uid", res.UID, "err", err)
	}
}

// review answers a request; a panic in the checks denies with the reason
// rather than dropping the connection (the API server would apply the
// failure policy, which may be Ignore).
func (h *Handler) review(r *http.Request, c *Checker, req *admissionv1.AdmissionRequest) (res *admissionv1.AdmissionResponse) {
	defer func() {
		if p := recover(); p != nil {
			if h.Logger != nil {
				h.Logger.Error("admission check panicked", "uid", req.UID, "panic", p)
			}
			if h.Metrics != nil {
				h.Metrics.decisions.WithLabelValues("error", "").Inc()
			}
			res = &admissionv1.AdmissionResponse{UID: req.UID, Allowed: false,
				AuditAnnotations: map[string]string{AuditDecision: Denied, AuditReasons: fmt.Sprint("internal error: ", p)},
				Result: &metav1.Status{Status: metav1.StatusFailure, Code: 500, Reason: metav1.StatusReasonInternalError,
					Message: fmt.Sprintf("airlock: internal error, denied (fail closed): %v", p)}}
		}
	}()
	return c.Review(r.Context(), req)
}

func (h *Handler) bad(w http.ResponseWriter, code int, msg string) {
	if h.Metrics != nil {
		h.Metrics.decisions.WithLabelValues("error", "").Inc()
	}
	if h.Logger != nil {
		h.Logger.Warn("bad admission request", "status", code, "reason", msg)
	}
	http.Error(w, "airlock admission: "+msg, code)
}

// CertReloader serves a certificate and key from files, reading them
// again when either changes on disk (cert-manager renewals, Secret volume
// updates), without a restart. A pair that fails to load keeps the last
// good one in use and is reported by Err.
type CertReloader struct {
	CertFile, KeyFile string
	// Check is how often the files' modification times are looked at
	// (default 10s).
	Check time.Duration

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]time.Time
	checked time.Time
	err     error
}

// Load reads the pair now; an error here is fatal to a server that
// starts without a certificate.
func (c *CertReloader) Load() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reload(true)
}

func (c *CertReloader) reload(force bool) error {
	st := func(p string) time.Time {
		if fi, err := os.Stat(p); err == nil {
			return fi.ModTime()
		}
		return time.Time{}
	}
	stamp := [2]time.Time{st(c.CertFile), st(c.KeyFile)}
	if !force && stamp == c.stamp && c.cert != nil {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		c.err = fmt.Errorf("loading the TLS certificate: %w", err)
		return c.err
	}
	c.cert, c.stamp, c.err = &cert, stamp, nil
	return nil
}

// GetCertificate is tls.Config.GetCertificate.
func (c *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	every := c.Check
	if every <= 0 {
		every = 10 * time.Second
	}
	if now := time.Now(); now.Sub(c.checked) >= every {
		c.checked = now
		_ = c.reload(false) // a bad new pair keeps the old one; Err says why
	}
	if c.cert == nil {
		return nil, c.err
	}
	return c.cert, nil
}

// Err is the last reload's error, nil when the pair in use is current.
func (c *CertReloader) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
