package server

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus series. Every label value comes
// from a closed set (route names, HTTP methods, status codes), never from
// a path or a repository name.
type metrics struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	bytesReceived  prometheus.Counter
	bytesSent      prometheus.Counter
	uploadDuration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_registry_requests_total",
			Help: "Registry API requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "airlock_registry_request_duration_seconds",
			Help:    "Registry API request duration by route and method.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1 ms to about 4 min
		}, []string{"route", "method"}),
		bytesReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_registry_bytes_received_total",
			Help: "Request body bytes read by the registry API.",
		}),
		bytesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_registry_bytes_sent_total",
			Help: "Response body bytes written by the registry API.",
		}),
		uploadDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "airlock_registry_upload_duration_seconds",
			Help:    "Time from the start of a blob upload to its commit.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10), // 10 ms to about 43 min
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.bytesReceived, m.bytesSent, m.uploadDuration)
	}
	return m
}

// methodLabel keeps the method label bounded: anything outside the API's
// methods is "other".
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return m
	}
	return "other"
}

func (m *metrics) observe(route, method string, status int, d time.Duration, in, out int64) {
	method = methodLabel(method)
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
	m.bytesReceived.Add(float64(in))
	m.bytesSent.Add(float64(out))
}

// countingWriter records the status and counts body bytes. It keeps
// io.ReaderFrom so that blob downloads still use sendfile, and Unwrap so
// that http.ResponseController reaches the connection.
type countingWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	n           int64
}

func (c *countingWriter) WriteHeader(status int) {
	if !c.wroteHeader {
		c.status, c.wroteHeader = status, true
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if !c.wroteHeader {
		c.WriteHeader(http.StatusOK)
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	if !c.wroteHeader {
		c.WriteHeader(http.StatusOK)
	}
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(c.ResponseWriter, r)
	}
	c.n += n
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// countingReader counts request body bytes.
type countingReader struct {
	io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

// keyedMutex is a mutex per key, dropped when nobody holds or waits for it.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns its unlock.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// startTimes remembers when this process started each upload session, to
// observe upload duration at commit. Sessions started before a restart are
// not observed; abandoned ones are dropped after a day.
type startTimes struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (s *startTimes) put(id string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]time.Time{}
	}
	if len(s.m) >= 4096 {
		for k, v := range s.m {
			if t.Sub(v) > 24*time.Hour {
				delete(s.m, k)
			}
		}
	}
	s.m[id] = t
}

func (s *startTimes) take(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.m[id]
	delete(s.m, id)
	return t, ok
}
