package admission

import (
	"cmp"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/singleflight"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/airlock-dev/airlock/gate"
	"github.com/airlock-dev/airlock/gate/rego"
	"github.com/airlock-dev/airlock/registry"
)

// VerdictReader reads the gate's verdicts attached to a release digest
// that are signed by a trusted key. A release with none gives none and
// no error; an error means the registry could not be read.
type VerdictReader interface {
	Verdicts(ctx context.Context, ref registry.Ref) ([]*gate.Verdict, error)
}

// Describer reads what a reference is: its manifest's artifactType, or
// its config's media type when it has none.
type Describer interface {
	ArtifactType(ctx context.Context, ref registry.Ref) (string, error)
}

// Resolver tells the digest a tag points at, for the message that denies
// the tag.
type Resolver interface {
	Resolve(ctx context.Context, ref registry.Ref) (digest.Digest, error)
}

// ErrBadVerdict is a VerdictReader's error for verdict attestations that
// are there but broken (a bad signature, an unreadable predicate): it
// denies like a failed verdict, not like an unreachable registry.
var ErrBadVerdict = errors.New("the release's verdict attestations are broken")

// Options are a Checker's collaborators; all are optional.
type Options struct {
	// Resolver names a tag's digest in the denial (without one the
	// message says only that a digest is needed).
	Resolver Resolver
	// Metrics counts decisions, cache hits and registry errors.
	Metrics *Metrics
	// Exceptions verifies break-glass exceptions; without it none is
	// accepted.
	Exceptions SignatureVerifier
	// Policies decide each release at stage admission (Config.Engine);
	// nil: none.
	Policies *rego.Engine
	// Describer reads artifact types for releases entries with
	// artifact_type; without it such references are not releases.
	Describer Describer
	// Logger gets one line per decision (default: none).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Checker decides AdmissionRequests. It is safe for concurrent use.
type Checker struct {
	cfg      *Config
	verdicts VerdictReader
	opts     Options
	trustID  string
	cache    *cache
	group    singleflight.Group
	types    *cache // artifact types by reference
	typesSF  singleflight.Group
}

// NewChecker checks requests against cfg, reading verdicts with v.
func NewChecker(cfg *Config, v VerdictReader, opts Options) *Checker {
	h := sha256.New()
	for _, k := range cfg.TrustPEM {
		h.Write(k)
		h.Write([]byte{0})
	}
	return &Checker{
		cfg: cfg, verdicts: v, opts: opts,
		trustID: hex.EncodeToString(h.Sum(nil))[:16],
		cache:   newCache(cfg.Cache.Size),
		types:   newCache(cfg.Cache.Size),
	}
}

func (c *Checker) now() time.Time {
	if c.opts.Now != nil {
		return c.opts.Now()
	}
	return time.Now()
}

// errUnavailable marks a verdict that could not be read.
type errUnavailable struct{ err error }

func (e errUnavailable) Error() string {
	return fmt.Sprintf("the verdicts could not be read: %v", e.err)
}
func (e errUnavailable) Unwrap() error { return e.err }

// finding is one release's problem.
type finding struct {
	msg         string
	unavailable bool
	// revoked denies in every mode: the kill-switch is not a warning.
	revoked bool
	// digest is the release's, when the problem is its verdict (what a
	// break-glass exception may waive).
	digest string
}

// Audit annotation keys (the API server prefixes them with the webhook's
// name).
const (
	AuditDecision    = "decision"
	AuditEnvironment = "environment"
	AuditReleases    = "releases"
	AuditReasons     = "reasons"
	AuditBreakGlass  = "break-glass"
)

// Outcomes, as counted and annotated.
const (
	Allowed = "allowed"
	Denied  = "denied"
	Warned  = "warned"
	Skipped = "skipped"
)

// Review answers one AdmissionRequest. It never allows by accident: an
// object that cannot be read, a namespace without an environment, and a
// release whose verdict cannot be checked deny in enforce mode.
func (c *Checker) Review(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	start := time.Now()
	res := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true, AuditAnnotations: map[string]string{}}
	mode := c.cfg.ModeOf(req.Namespace)
	outcome := c.review(ctx, req, mode, res)
	res.AuditAnnotations[AuditDecision] = outcome
	if m := c.opts.Metrics; m != nil {
		m.observe(outcome, mode, time.Since(start))
	}
	if l := c.opts.Logger; l != nil {
		l.Info("admission", "uid", req.UID, "kind", req.Kind.Kind, "namespace", req.Namespace, "name", req.Name,
			"operation", req.Operation, "dry_run", req.DryRun != nil && *req.DryRun, "mode", mode, "decision", outcome,
			"releases", res.AuditAnnotations[AuditReleases], "reasons", res.AuditAnnotations[AuditReasons])
	}
	return res
}

func (c *Checker) review(ctx context.Context, req *admissionv1.AdmissionRequest, mode string, res *admissionv1.AdmissionResponse) string {
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update:
	default:
		res.AuditAnnotations[AuditReasons] = fmt.Sprintf("operation %s is not checked", req.Operation)
		return Skipped
	}
	if len(req.Object.Raw) == 0 {
		return c.conclude(res, mode, []finding{{msg: "the request carries no object to check"}})
	}
	refs, err := Extract(req.Kind, req.Object.Raw)
	if errors.Is(err, ErrNotChecked) {
		res.AuditAnnotations[AuditReasons] = fmt.Sprintf("kind %s is not checked", gvkString(req.Kind))
		return Skipped
	}
	if err != nil {
		return c.conclude(res, mode, []finding{{msg: err.Error()}})
	}
	env := c.cfg.Environment(req.Namespace)
	if env != "" {
		res.AuditAnnotations[AuditEnvironment] = env
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout.Duration)
	defer cancel()

	// Each release once, however many fields name it.
	type release struct {
		ref    registry.Ref
		fields []string
	}
	var releases []*release
	byValue := map[string]*release{}
	var lookupFailures []finding
	for _, r := range refs {
		parsed, err := registry.ParseRef(r.Value)
		if err != nil {
			continue
		}
		if ok, types := c.cfg.IsRelease(parsed); !ok {
			if len(types) == 0 {
				continue
			}
			is, err := c.isArtifactType(ctx, parsed, types)
			if err != nil {
				// It may be a model release: an unanswered lookup is
				// answered like an unreadable verdict.
				lookupFailures = append(lookupFailures, finding{msg: fmt.Sprintf("%s (%s): could not tell whether it is a model release: %v", parsed, r.Field, err), unavailable: true})
				continue
			}
			if !is {
				continue
			}
		}
		if rel, ok := byValue[r.Value]; ok {
			rel.fields = append(rel.fields, r.Field)
			continue
		}
		rel := &release{ref: parsed, fields: []string{r.Field}}
		byValue[r.Value] = rel
		releases = append(releases, rel)
	}
	if len(releases) == 0 {
		return c.conclude(res, mode, lookupFailures)
	}
	var names []string
	for _, r := range releases {
		names = append(names, r.ref.String())
	}
	res.AuditAnnotations[AuditReleases] = strings.Join(names, ",")
	if env == "" {
		return c.conclude(res, mode, []finding{{msg: fmt.Sprintf("namespace %q has no environment in admission.yaml, so no verdict can admit %s", req.Namespace, strings.Join(names, ", "))}})
	}

	findings := make([]*finding, len(releases))
	var wg sync.WaitGroup
	for i, r := range releases {
		wg.Go(func() {
			if f := c.check(ctx, r.ref, env, r.fields); f != nil {
				findings[i] = f
			}
		})
	}
	wg.Wait()
	fs := lookupFailures
	for _, f := range findings {
		if f != nil {
			fs = append(fs, *f)
		}
	}
	before := len(fs)
	fs = c.breakGlass(req, res, fs)
	if e := c.opts.Policies; e != nil {
		waived := before > len(fs)
		failed := map[string]bool{}
		for _, f := range fs {
			failed[f.digest] = true
		}
		for i, r := range releases {
			verdict := findings[i] == nil
			glass := !verdict && waived && !failed[r.ref.Digest.String()]
			fs = append(fs, c.decide(ctx, e, req, mode, env, r.ref, r.fields[0], verdict, glass, res)...)
		}
	}
	return c.conclude(res, mode, fs)
}

// decide runs the admission policies on one release; their denies are
// findings, their warnings are returned as warnings. A decision that
// cannot be taken denies (fail closed).
func (c *Checker) decide(ctx context.Context, e *rego.Engine, req *admissionv1.AdmissionRequest, mode, env string, ref registry.Ref, field string, verdict, glass bool, res *admissionv1.AdmissionResponse) []finding {
	var groups []string
	groups = append(groups, req.UserInfo.Groups...)
	in := &gate.Input{
		Schema: gate.InputSchema, Stage: gate.StageAdmission, Now: c.now().UTC(),
		Environment: gate.Environment{Name: env},
		Release:     gate.Release{Ref: ref.String(), Digest: ref.Digest.String(), Annotations: map[string]string{}, Parts: []gate.Part{}, DataScopes: []string{}, Datasets: []gate.Dataset{}},
		Signatures:  gate.Signatures{Keys: []gate.Signer{}, Problems: []string{}},
		Evals:       []gate.EvalEvidence{}, Bench: []gate.BenchEvidence{},
		Changes:   gate.Changes{Parts: []gate.PartChange{}, Roles: []string{}},
		Approvals: []gate.Approval{}, Metrics: map[string]float64{},
		Admission: &gate.Admission{Namespace: req.Namespace, Kind: gvkString(req.Kind), Name: req.Name, Operation: string(req.Operation),
			User: req.UserInfo.Username, Groups: cmpSlice(groups), Field: field, DryRun: req.DryRun != nil && *req.DryRun,
			Mode: mode, Verdict: verdict, BreakGlass: glass},
	}
	d := e.Decide(ctx, in)
	for _, w := range d.Warn {
		res.Warnings = append(res.Warnings, fmt.Sprintf("airlock: %s (%s): policy %s: %s", ref, field, w.Policy, w.Msg))
	}
	var out []finding
	for _, r := range d.Deny {
		out = append(out, finding{msg: fmt.Sprintf("%s (%s): policy %s: %s", ref, field, r.Policy, r.Msg)})
	}
	if len(d.Deny) > 0 || len(d.Warn) > 0 {
		res.AuditAnnotations["policy-revision"] = d.Revision
	}
	return out
}

func cmpSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// breakGlass waives the verdict findings of the digests a valid exception
// on the object names: they become warnings, annotated, counted and
// logged. An exception that does not verify waives nothing and says why.
func (c *Checker) breakGlass(req *admissionv1.AdmissionRequest, res *admissionv1.AdmissionResponse, fs []finding) []finding {
	values := annotations(req.Object.Raw)
	if len(values) == 0 {
		return fs
	}
	var (
		ex   *checkedException
		errs []string
	)
	for _, v := range values {
		e, err := parseException(v, c.opts.Exceptions, req.Namespace, c.cfg.BreakGlass.MaxTTL.Duration, c.now())
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		ex = e
		break
	}
	if ex == nil {
		msg := "break-glass exception not applied: " + strings.Join(errs, "; ")
		res.AuditAnnotations[AuditBreakGlass] = msg
		res.Warnings = append(res.Warnings, "airlock: "+msg)
		return fs
	}
	var kept []finding
	var waived []string
	for _, f := range fs {
		if f.digest != "" && !f.revoked && ex.covers(f.digest) {
			waived = append(waived, f.msg)
			continue
		}
		kept = append(kept, f)
	}
	if len(waived) == 0 {
		return fs
	}
	what := fmt.Sprintf("break-glass exception by %s (ticket %s: %s; key %s; expires %s) admits: %s",
		ex.By, ex.Ticket, ex.Reason, ex.key, ex.Expires.Format(time.RFC3339), strings.Join(waived, "; "))
	res.AuditAnnotations[AuditBreakGlass] = what
	res.Warnings = append(res.Warnings, "airlock: "+what)
	if m := c.opts.Metrics; m != nil {
		m.breakGlass.Inc()
	}
	if l := c.opts.Logger; l != nil {
		l.Warn("break-glass exception used", "uid", req.UID, "namespace", req.Namespace, "kind", req.Kind.Kind, "name", req.Name,
			"by", ex.By, "ticket", ex.Ticket, "reason", ex.Reason, "key", ex.key, "expires", ex.Expires, "waived", strings.Join(waived, "; "))
	}
	return kept
}

// check finds the problem with one release, nil when it may run.
func (c *Checker) check(ctx context.Context, ref registry.Ref, env string, fields []string) *finding {
	where := strings.Join(fields, ", ")
	if ref.Digest == "" {
		tag := cmp.Or(ref.Tag, "latest")
		msg := fmt.Sprintf("%s (%s) is the tag %q, not a digest: a tag can move after the gate decided", ref, where, tag)
		if r := c.opts.Resolver; r != nil {
			if d, err := r.Resolve(ctx, ref); err == nil {
				msg += fmt.Sprintf("; pin it: %s@%s", ref.Name(), d)
			} else {
				msg += fmt.Sprintf("; pin it by digest (the tag did not resolve: %v)", err)
			}
		} else {
			msg += "; pin it by digest"
		}
		return &finding{msg: msg}
	}
	if c.cfg.IsRevoked(ref.Digest.String()) {
		return &finding{msg: fmt.Sprintf("%s (%s) is revoked in admission.yaml: it may not run anywhere", ref, where), revoked: true}
	}
	err := c.verdict(ctx, ref, env)
	if err == nil {
		return nil
	}
	var u errUnavailable
	if errors.As(err, &u) {
		if m := c.opts.Metrics; m != nil {
			m.registryErrors.Inc()
		}
		return &finding{msg: fmt.Sprintf("%s (%s): %v", ref, where, err), unavailable: true, digest: ref.Digest.String()}
	}
	return &finding{msg: fmt.Sprintf("%s (%s): %v", ref, where, err), digest: ref.Digest.String()}
}

// verdict admits a digest in env from the cache, or by reading its
// verdicts once however many requests ask at the same time. Only passes
// are cached, until the verdict expires or the cache TTL, whichever is
// first.
func (c *Checker) verdict(ctx context.Context, ref registry.Ref, env string) error {
	key := ref.Digest.String() + "|" + env + "|" + c.trustID
	now := c.now()
	if c.cache.get(key, now) {
		if m := c.opts.Metrics; m != nil {
			m.cacheHits.Inc()
		}
		return nil
	}
	if m := c.opts.Metrics; m != nil {
		m.cacheMisses.Inc()
	}
	ch := c.group.DoChan(key, func() (any, error) {
		// The read outlives a caller that gives up, so that the others
		// (and the next request) get its answer; it has its own bound.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout.Duration)
		defer cancel()
		vs, err := c.verdicts.Verdicts(rctx, ref)
		if errors.Is(err, ErrBadVerdict) {
			return nil, err
		}
		if err != nil {
			return nil, errUnavailable{err}
		}
		now := c.now()
		if err := gate.Admit(vs, ref.Digest.String(), env, now); err != nil {
			return nil, err
		}
		until := now.Add(c.cfg.Cache.TTL.Duration)
		var latest time.Time
		for _, v := range vs {
			if v.Allows(ref.Digest.String(), env, now) == nil && v.Expires.After(latest) {
				latest = v.Expires
			}
		}
		if latest.Before(until) {
			until = latest
		}
		c.cache.put(key, until)
		return nil, nil
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return errUnavailable{fmt.Errorf("no answer within %s: %w", c.cfg.Timeout.Duration, ctx.Err())}
	}
}

// isArtifactType reads ref's artifact type (cached; concurrent lookups
// of one reference share one read) and reports whether it is one of
// types.
func (c *Checker) isArtifactType(ctx context.Context, ref registry.Ref, types []string) (bool, error) {
	if c.opts.Describer == nil {
		return false, nil
	}
	key := ref.String()
	typ, ok := c.types.value(key, c.now())
	if !ok {
		ch := c.typesSF.DoChan(key, func() (any, error) {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout.Duration)
			defer cancel()
			t, err := c.opts.Describer.ArtifactType(rctx, ref)
			if err != nil {
				return "", err
			}
			c.types.putValue(key, t, c.now().Add(c.cfg.Cache.TTL.Duration))
			return t, nil
		})
		select {
		case r := <-ch:
			if r.Err != nil {
				return false, r.Err
			}
			typ = r.Val.(string)
		case <-ctx.Done():
			return false, fmt.Errorf("no answer within %s: %w", c.cfg.Timeout.Duration, ctx.Err())
		}
	}
	return slices.Contains(types, typ), nil
}

// conclude turns findings into the answer of mode.
func (c *Checker) conclude(res *admissionv1.AdmissionResponse, mode string, fs []finding) string {
	if len(fs) == 0 {
		return Allowed
	}
	var deny, warn []string
	for _, f := range fs {
		if !f.revoked && (mode == Warn || f.unavailable && c.cfg.RegistryUnavailable == "allow") {
			warn = append(warn, f.msg)
		} else {
			deny = append(deny, f.msg)
		}
	}
	slices.Sort(deny)
	slices.Sort(warn)
	res.AuditAnnotations[AuditReasons] = strings.Join(append(slices.Clone(deny), warn...), "; ")
	for _, w := range warn {
		res.Warnings = append(res.Warnings, "airlock: "+w)
	}
	if len(deny) == 0 {
		return Warned
	}
	res.Allowed = false
	res.Result = &metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    403,
		Reason:  metav1.StatusReasonForbidden,
		Message: "airlock: " + strings.Join(deny, "; "),
	}
	return Denied
}

func gvkString(g metav1.GroupVersionKind) string {
	if g.Group == "" {
		return g.Version + "/" + g.Kind
	}
	return g.Group + "/" + g.Version + "/" + g.Kind
}

// cache holds admitted (digest, environment, trust) keys until a time,
// least recently used first out.
type cache struct {
	mu    sync.Mutex
	size  int
	ll    *list.List
	items map[string]*list.Element
}

type cacheEntry struct {
	key   string
	val   string
	until time.Time
}

func newCache(size int) *cache {
	return &cache{size: size, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *cache) get(key string, now time.Time) bool {
	_, ok := c.value(key, now)
	return ok
}

func (c *cache) value(key string, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return "", false
	}
	ent := e.Value.(*cacheEntry)
	if !now.Before(ent.until) {
		c.ll.Remove(e)
		delete(c.items, key)
		return "", false
	}
	c.ll.MoveToFront(e)
	return ent.val, true
}

func (c *cache) put(key string, until time.Time) { c.putValue(key, "", until) }

func (c *cache) putValue(key, val string, until time.Time) {
	if c.size <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		ent := e.Value.(*cacheEntry)
		ent.val, ent.until = val, until
		c.ll.MoveToFront(e)
		return
	}
	c.items[key] = c.ll.PushFront(&cacheEntry{key: key, val: val, until: until})
	for c.ll.Len() > c.size {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
}

// Len is the number of cached entries.
func (c *cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
