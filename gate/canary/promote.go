package canary

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// RecordType is the predicate type of the signed promotion record attached
// to the candidate (DESIGN.md §3).
const RecordType = "https://airlock.dev/attestations/promotion/v1"

// Phase is where a promotion stands.
type Phase string

// Phases.
const (
	Running    Phase = "running"
	Paused     Phase = "paused"
	Promoted   Phase = "promoted"
	RolledBack Phase = "rolled_back"
)

// Record is a promotion's state and history: saved after every change so
// that `airlock promote --resume` continues where it stopped, and signed
// and attached to the candidate when the promotion ends.
type Record struct {
	Schema      string  `json:"schema"`
	Repository  string  `json:"repository"`
	Environment string  `json:"environment"`
	Canary      Variant `json:"canary"`
	Baseline    Variant `json:"baseline"`
	// LastGood is the digest a rollback points the environment tag at:
	// the baseline, whose pass verdict was checked at the start.
	LastGood string `json:"last_good,omitempty"`
	// Plan is the sha256 of canary.yaml as read at the start.
	Plan   string  `json:"plan"`
	Alpha  float64 `json:"alpha"`
	Phase  Phase   `json:"phase"`
	Reason string  `json:"reason,omitempty"`
	// Step indexes the plan's judged steps (weights below 100).
	Step        int       `json:"step"`
	StepStarted time.Time `json:"step_started"`
	Extensions  int       `json:"extensions"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished,omitzero"`
	Looks       []Look    `json:"looks"`
	Actions     []Action  `json:"actions"`
}

// Look is one judgement during a step and what was decided on it.
type Look struct {
	At         time.Time  `json:"at"`
	Step       int        `json:"step"`
	Weight     int        `json:"weight"`
	Decision   Decision   `json:"decision"`
	Assessment Assessment `json:"assessment"`
}

// Decision is what a look led to.
type Decision string

// Decisions.
const (
	// Continue: keep the step going; look again after the interval.
	Continue Decision = "continue"
	// Advance: go to the next step (the pause ended, or every metric
	// passed early).
	Advance Decision = "advance"
	// Extend: the pause ended with a metric short of data; the step
	// is held for no_data.extend.
	Extend Decision = "extend"
	// Hold: pause for a human.
	Hold Decision = "pause"
	// Rollback: a metric failed.
	Rollback Decision = "rollback"
	// Promote: every judged step is done.
	Promote Decision = "promote"
)

// Action is something the promotion did to traffic or tags.
type Action struct {
	At     time.Time `json:"at"`
	What   string    `json:"what"`
	Error  string    `json:"error,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// Promoter runs a canary plan: it sets each step's weight, looks every
// interval, and ends in a promotion, a rollback or a pause for a human.
// Moving tags and signing the record are the caller's: it has the
// registry.
type Promoter struct {
	Plan     *Config
	Provider Provider
	Actuator Actuator
	// Now and Sleep are the clock (time.Now and a timer by default);
	// tests give a simulated one.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Save persists the record after every change (for --resume).
	Save func(*Record) error
	// OnLook is told of every look, for progress.
	OnLook func(*Record, Look)
	Log    *slog.Logger
}

func (p *Promoter) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Promoter) sleep(ctx context.Context, d time.Duration) error {
	if p.Sleep != nil {
		return p.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (p *Promoter) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (p *Promoter) save(r *Record) error {
	if p.Save == nil {
		return nil
	}
	if err := p.Save(r); err != nil {
		return fmt.Errorf("saving the promotion record: %w", err)
	}
	return nil
}

// NewRecord starts the record of a promotion of canary over baseline.
func NewRecord(plan *Config, planDigest, repository string, baseline, canary Variant, lastGood string) *Record {
	return &Record{
		Schema: RecordType, Repository: repository, Environment: plan.Environment,
		Baseline: baseline, Canary: canary, LastGood: lastGood,
		Plan: planDigest, Alpha: plan.Alpha,
	}
}

// Run drives the promotion from wherever r stands until it is promoted,
// rolled back or paused, or ctx ends (the record is saved; --resume goes
// on). A paused record given to Run resumes: its step starts again with a
// fresh no-data allowance, or, if it paused on an inconclusive last step,
// it is promoted (the human approved).
func (p *Promoter) Run(ctx context.Context, r *Record) error {
	judged := p.Plan.Judged()
	switch r.Phase {
	case Promoted, RolledBack:
		return fmt.Errorf("the promotion has ended: %s", r.Phase)
	case "":
		now := p.now()
		r.Phase, r.Started, r.Step, r.StepStarted = Running, now, 0, now
		// A kill-switch left on by an earlier rollback would keep the
		// canary from any traffic: a new promotion is the decision to
		// try again.
		switch err := p.Actuator.KillSwitch(ctx, false, "a new promotion starts"); {
		case errors.Is(err, ErrUnsupported):
		case err != nil:
			r.act(now, "kill-switch off", err.Error(), "")
			_ = p.save(r)
			return fmt.Errorf("turning the kill-switch off: %w", err)
		default:
			r.act(now, "kill-switch off", "", "a new promotion starts")
		}
		if err := p.setWeight(ctx, r, judged[0].Weight); err != nil {
			return err
		}
	case Paused:
		now := p.now()
		r.act(now, "resumed", "", "after: "+r.Reason)
		r.Phase, r.Reason = Running, ""
		if r.Step >= len(judged)-1 && r.lastDecision() == Hold && r.lastStatus() == Inconclusive {
			return p.promote(ctx, r)
		}
		r.StepStarted, r.Extensions = now, 0
		if err := p.setWeight(ctx, r, judged[r.Step].Weight); err != nil {
			return err
		}
	}
	if err := p.save(r); err != nil {
		return err
	}
	for {
		if r.Step >= len(judged) {
			return p.promote(ctx, r)
		}
		step := judged[r.Step]
		deadline := r.StepStarted.Add(step.Pause.Duration + time.Duration(r.Extensions)*p.Plan.NoData.Extend.Duration)
		wait := min(p.Plan.Interval.Duration, deadline.Sub(p.now()))
		if wait > 0 {
			if err := p.sleep(ctx, wait); err != nil {
				return err
			}
		}
		now := p.now()
		a := p.judge(ctx, r, now)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		look := Look{At: now, Step: r.Step, Weight: step.Weight, Assessment: a}
		ended := !now.Before(deadline)
		switch {
		case a.Status == Fail:
			look.Decision = Rollback
		case a.Status == Pass:
			look.Decision = Advance
		case !ended:
			look.Decision = Continue
		case a.Status == NoData && r.Extensions < *p.Plan.NoData.MaxExtensions:
			look.Decision = Extend
		case a.Status == NoData:
			look.Decision = Hold
		case r.Step == len(judged)-1 && p.Plan.OnInconclusive == "pause":
			look.Decision = Hold
		default:
			look.Decision = Advance
		}
		r.Looks = append(r.Looks, look)
		if p.OnLook != nil {
			p.OnLook(r, look)
		}
		switch look.Decision {
		case Rollback:
			return p.rollback(ctx, r, "rolled back at step "+stepName(r.Step, step.Weight)+": "+strings.Join(a.Failed(), "; "))
		case Hold:
			r.Phase = Paused
			if a.Status == NoData {
				r.Reason = fmt.Sprintf("paused at step %s: still no data after %d extensions: %s", stepName(r.Step, step.Weight), r.Extensions, strings.Join(a.Missing(), "; "))
			} else {
				r.Reason = fmt.Sprintf("paused at step %s: the last step is inconclusive (on_inconclusive: pause)", stepName(r.Step, step.Weight))
			}
			r.act(now, "paused", "", r.Reason)
			p.log().Warn("promotion paused for a human", "reason", r.Reason)
			return p.save(r)
		case Extend:
			r.Extensions++
			r.act(now, "extended", "", fmt.Sprintf("step %s by %s (%d of %d): %s", stepName(r.Step, step.Weight), p.Plan.NoData.Extend.Duration, r.Extensions, *p.Plan.NoData.MaxExtensions, strings.Join(a.Missing(), "; ")))
		case Advance:
			r.Step++
			r.StepStarted, r.Extensions = now, 0
			if r.Step < len(judged) {
				if err := p.setWeight(ctx, r, judged[r.Step].Weight); err != nil {
					return err
				}
			}
		}
		if err := p.save(r); err != nil {
			return err
		}
	}
}

// Abort rolls the promotion back by a human's decision.
func (p *Promoter) Abort(ctx context.Context, r *Record, reason string) error {
	if r.Phase == Promoted || r.Phase == RolledBack {
		return fmt.Errorf("the promotion has ended: %s", r.Phase)
	}
	return p.rollback(ctx, r, "rolled back by hand: "+reason)
}

func (r *Record) lastDecision() Decision {
	if len(r.Looks) == 0 {
		return ""
	}
	return r.Looks[len(r.Looks)-1].Decision
}

func (r *Record) lastStatus() Status {
	if len(r.Looks) == 0 {
		return ""
	}
	return r.Looks[len(r.Looks)-1].Assessment.Status
}

func (r *Record) act(at time.Time, what, errText, detail string) {
	r.Actions = append(r.Actions, Action{At: at, What: what, Error: errText, Detail: detail})
}

func stepName(i, weight int) string { return fmt.Sprintf("%d (%d%%)", i+1, weight) }

func (p *Promoter) setWeight(ctx context.Context, r *Record, w int) error {
	err := p.Actuator.SetWeight(ctx, w)
	if err != nil {
		r.act(p.now(), fmt.Sprintf("weight %d%%", w), err.Error(), "")
		_ = p.save(r)
		return fmt.Errorf("setting the canary's weight to %d%%: %w", w, err)
	}
	r.act(p.now(), fmt.Sprintf("weight %d%%", w), "", "")
	p.log().Info("canary weight set", "weight", w)
	return nil
}

// judge reads every metric of both variants over the canary's life so far.
func (p *Promoter) judge(ctx context.Context, r *Record, now time.Time) Assessment {
	in := make([]Input, len(p.Plan.Metrics))
	for i, m := range p.Plan.Metrics {
		in[i].Metric = m
		in[i].Baseline, in[i].BaselineErr = p.Provider.Observe(ctx, Query{Metric: m, Variant: r.Baseline, Start: r.Started, End: now})
		in[i].Canary, in[i].CanaryErr = p.Provider.Observe(ctx, Query{Metric: m, Variant: r.Canary, Start: r.Started, End: now})
	}
	return Judge(in, p.Plan.Alpha)
}

func (p *Promoter) promote(ctx context.Context, r *Record) error {
	if err := p.setWeight(ctx, r, 100); err != nil {
		return err
	}
	now := p.now()
	r.Phase, r.Finished = Promoted, now
	r.Reason = "promoted: every judged step passed or ended without a failure"
	if n := len(r.Looks); n > 0 && r.Looks[n-1].Assessment.Status == Inconclusive && r.Looks[n-1].Decision == Hold {
		r.Reason = "promoted by hand after an inconclusive last step"
	}
	p.log().Info("canary promoted")
	return p.save(r)
}

func (p *Promoter) rollback(ctx context.Context, r *Record, reason string) error {
	now := p.now()
	r.Phase, r.Finished, r.Reason = RolledBack, now, reason
	var errs []error
	if err := p.Actuator.SetWeight(ctx, 0); err != nil {
		r.act(now, "weight 0%", err.Error(), "")
		errs = append(errs, fmt.Errorf("setting the canary's weight to 0%%: %w", err))
	} else {
		r.act(now, "weight 0%", "", "")
	}
	if p.Plan.Rollback.KillSwitch {
		err := p.Actuator.KillSwitch(ctx, true, reason)
		switch {
		case errors.Is(err, ErrUnsupported):
			r.act(now, "kill-switch on", "", "the actuator has no kill-switch")
		case err != nil:
			r.act(now, "kill-switch on", err.Error(), "")
			errs = append(errs, fmt.Errorf("engaging the kill-switch: %w", err))
		default:
			r.act(now, "kill-switch on", "", reason)
		}
	}
	p.log().Warn("canary rolled back", "reason", reason)
	errs = append(errs, p.save(r))
	return errors.Join(errs...)
}
