package gate

import (
	"errors"
	"fmt"
	"time"
)

// Outcomes of a decision.
const (
	// Pass: no policy denied.
	Pass = "pass"
	// Fail: at least one policy denied.
	Fail = "fail"
	// Error: the policies could not be evaluated, or answered something
	// that is not a decision. It denies (fail closed) and is not signed.
	Error = "error"
)

// Reason is one policy's deny or warn message.
type Reason struct {
	// Policy is the policy's name: the last segment of its Rego package
	// (airlock.gate.NAME), or "engine" for the evaluation itself.
	Policy string `json:"policy"`
	// Rule is the rule that produced it (deny or warn).
	Rule        string `json:"rule"`
	Msg         string `json:"msg"`
	Remediation string `json:"remediation,omitempty"`
	// Demoted is set when the policy denied but runs in warn mode.
	Demoted bool `json:"demoted,omitempty"`
}

// Decision is one policy evaluation's outcome, with what it was taken on
// (DESIGN.md §1: digest, policy revision, evidence, reasons, time).
type Decision struct {
	ID          string    `json:"id"`
	Time        time.Time `json:"time"`
	Environment string    `json:"environment"`
	Digest      string    `json:"digest"`
	// Revision is the policy set's digest: its modules and modes.
	Revision    string   `json:"policy_revision"`
	InputDigest string   `json:"input_digest"`
	Outcome     string   `json:"outcome"`
	Allow       bool     `json:"allow"`
	Deny        []Reason `json:"deny"`
	Warn        []Reason `json:"warn"`
	// DryRun: the decision was taken, reported and not enforced (the
	// command exits 0 and signs nothing).
	DryRun bool `json:"dry_run,omitempty"`
	// Policies are the policies evaluated, by name.
	Policies []string `json:"policies"`
	// DurationMs is how long the evaluation took.
	DurationMs float64 `json:"duration_ms"`
}

// ErrDenied is what a command returns for a decision that did not pass.
var ErrDenied = errors.New("denied by policy")

// Err returns nil for a pass, and otherwise an error wrapping ErrDenied
// that names the first reason.
func (d *Decision) Err() error {
	if d.Outcome == Pass || d.DryRun {
		return nil
	}
	if len(d.Deny) == 0 {
		return fmt.Errorf("%w: outcome %s", ErrDenied, d.Outcome)
	}
	r := d.Deny[0]
	more := ""
	if len(d.Deny) > 1 {
		more = fmt.Sprintf(" (and %d more)", len(d.Deny)-1)
	}
	return fmt.Errorf("%w: %s: %s%s", ErrDenied, r.Policy, r.Msg, more)
}
