package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/gate"
	"github.com/airlock-dev/airlock/gate/admission"
	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/sign"
)

// verdictGuard is the embedded registry's tag guard (DESIGN.md §9): a
// protected tag may point only at a digest that carries a signed pass
// verdict for the tag's environment, by a trusted key, unexpired. It
// reads the verdicts from the registry itself, in process.
type verdictGuard struct {
	keys []*sign.Verifier
	// envs maps a tag to its environment; a tag not listed is its own
	// environment's name (prod → prod).
	envs   map[string]string
	remote sign.Remote
	now    func() time.Time
	log    *slog.Logger
}

var _ registry.TagGuard = (*verdictGuard)(nil)

// guardHost names the registry in references the guard builds; the
// in-process transport ignores it.
const guardHost = "airlock.internal"

func newVerdictGuard(h http.Handler, keys []*sign.Verifier, envs map[string]string, log *slog.Logger) *verdictGuard {
	return &verdictGuard{
		keys: keys, envs: envs, log: log, now: time.Now,
		remote: sign.Remote{PlainHTTP: true, UserAgent: "airlock-tag-guard/" + version(), Transport: handlerTransport{h}},
	}
}

func (v *verdictGuard) environment(tag string) string {
	if e, ok := v.envs[tag]; ok {
		return e
	}
	return tag
}

// AllowTag implements registry.TagGuard.
func (v *verdictGuard) AllowTag(ctx context.Context, repo, tag string, target ocispec.Descriptor, previous digest.Digest) error {
	env := v.environment(tag)
	ref := registry.Ref{Registry: guardHost, Repository: repo, Digest: target.Digest}
	now := v.now()
	verdicts, expired, err := readVerdicts(ctx, ref, v.keys, v.remote, now)
	switch {
	case errors.Is(err, admission.ErrBadVerdict):
		return fmt.Errorf("%w: %s: %w", registry.ErrTagProtected, target.Digest, err)
	case err != nil:
		return err
	}
	if err := gate.Admit(verdicts, target.Digest.String(), env, now); err != nil {
		if len(verdicts) == 0 && len(expired) > 0 {
			err = fmt.Errorf("%w: %s", err, expired[len(expired)-1])
		}
		v.log.Warn("tag refused", "repo", repo, "tag", tag, "digest", target.Digest, "environment", env, "reason", err.Error())
		return fmt.Errorf("%w: %w", registry.ErrTagProtected, err)
	}
	v.log.Info("tag allowed by verdict", "repo", repo, "tag", tag, "digest", target.Digest, "previous", previous, "environment", env)
	return nil
}

// handlerTransport serves requests with a handler in process: the
// guard's reads of verdicts never leave the registry (and need none of
// its credentials).
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	res := rec.Result()
	res.Request = r
	return res, nil
}
