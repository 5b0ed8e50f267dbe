package gate

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// VerdictType is the in-toto predicate type of a signed gate verdict
// (DESIGN.md §3). The JSON Schema is docs/schemas/verdict.v1.json.
const VerdictType = "https://airlock.dev/attestations/verdict/v1"

// Verdict is the predicate the gate signs and attaches to the release: a
// decision that the registry's tag guard and the admission webhook check
// offline. Its expires field is enforced by verification itself.
type Verdict struct {
	Schema      string         `json:"schema"`
	DecisionID  string         `json:"decision_id"`
	Subject     Subject        `json:"subject"`
	Environment string         `json:"environment"`
	Outcome     string         `json:"outcome"`
	Reasons     []Reason       `json:"reasons"`
	Warnings    []Reason       `json:"warnings"`
	Evidence    []EvidenceRef  `json:"evidence"`
	Revision    string         `json:"policy_revision"`
	InputDigest string         `json:"input_digest"`
	Time        time.Time      `json:"time"`
	Expires     time.Time      `json:"expires"`
	Baseline    *Subject       `json:"baseline,omitempty"`
	Stage       string         `json:"stage"`
	Approvals   []Approval     `json:"approvals,omitempty"`
	Extra       map[string]any `json:"extra,omitempty"`
}

// Subject names a release.
type Subject struct {
	Ref    string `json:"ref,omitempty"`
	Digest string `json:"digest"`
}

// EvidenceRef names one piece of evidence a verdict was taken on.
type EvidenceRef struct {
	Kind   string `json:"kind"` // eval or bench
	Suite  string `json:"suite,omitempty"`
	Digest string `json:"digest"`
	Source string `json:"source"`
}

// NewVerdict records d, taken on in, as a verdict valid for ttl.
func NewVerdict(d *Decision, in *Input, ttl time.Duration) *Verdict {
	v := &Verdict{
		Schema:      VerdictType,
		DecisionID:  d.ID,
		Subject:     Subject{Ref: in.Release.Ref, Digest: in.Release.Digest},
		Environment: d.Environment,
		Outcome:     d.Outcome,
		Reasons:     d.Deny,
		Warnings:    d.Warn,
		Evidence:    []EvidenceRef{},
		Revision:    d.Revision,
		InputDigest: d.InputDigest,
		Time:        d.Time.UTC(),
		Expires:     d.Time.Add(ttl).UTC(),
		Stage:       in.Stage,
		Approvals:   in.Approvals,
	}
	for _, e := range in.Evals {
		v.Evidence = append(v.Evidence, EvidenceRef{Kind: "eval", Suite: e.Suite, Digest: e.Digest, Source: e.Source})
	}
	for _, b := range in.Bench {
		v.Evidence = append(v.Evidence, EvidenceRef{Kind: "bench", Digest: b.Digest, Source: b.Source})
	}
	if in.Baseline != nil {
		v.Baseline = &Subject{Ref: in.Baseline.Ref, Digest: in.Baseline.Digest}
	}
	return v
}

// ErrNoVerdict is returned when no verdict allows a digest in an
// environment.
var ErrNoVerdict = errors.New("no valid pass verdict")

// ParseVerdict reads a verdict predicate.
func ParseVerdict(b []byte) (*Verdict, error) {
	var v Verdict
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("parsing verdict: %w", err)
	}
	if v.Schema != VerdictType {
		return nil, fmt.Errorf("parsing verdict: schema %q, want %s", v.Schema, VerdictType)
	}
	return &v, nil
}

// Allows reports why v does not let digest into environment at now, or
// nil when it does: the subject is the digest, the environment matches,
// the outcome is pass and it has not expired. The signature is checked
// by whoever read v.
func (v *Verdict) Allows(digest, environment string, now time.Time) error {
	switch {
	case v.Subject.Digest != digest:
		return fmt.Errorf("verdict %s is about %s, not %s", v.DecisionID, v.Subject.Digest, digest)
	case v.Environment != environment:
		return fmt.Errorf("verdict %s is for environment %q, not %q", v.DecisionID, v.Environment, environment)
	case v.Outcome != Pass:
		msg := ""
		if len(v.Reasons) > 0 {
			msg = ": " + v.Reasons[0].Msg
		}
		return fmt.Errorf("verdict %s for %q is %s%s", v.DecisionID, environment, v.Outcome, msg)
	case v.Expires.IsZero() || !now.Before(v.Expires):
		return fmt.Errorf("verdict %s for %q expired at %s", v.DecisionID, environment, v.Expires.Format(time.RFC3339))
	}
	return nil
}

// Admit returns nil when one of verdicts allows digest into environment
// at now, and otherwise an error wrapping ErrNoVerdict with each
// verdict's reason.
func Admit(verdicts []*Verdict, digest, environment string, now time.Time) error {
	if len(verdicts) == 0 {
		return fmt.Errorf("%w for %s in %q: the release has no signed verdict (run airlock gate)", ErrNoVerdict, digest, environment)
	}
	var why []error
	for _, v := range verdicts {
		err := v.Allows(digest, environment, now)
		if err == nil {
			return nil
		}
		why = append(why, err)
	}
	return fmt.Errorf("%w for %s in %q: %w", ErrNoVerdict, digest, environment, errors.Join(why...))
}
