package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/gate"
	"github.com/airlock-dev/airlock/gate/canary"
	"github.com/airlock-dev/airlock/gate/canary/gatewayapi"
	"github.com/airlock-dev/airlock/gate/canary/prometheus"
	"github.com/airlock-dev/airlock/gate/canary/router"
	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/sign"
)

type promoteFlags struct {
	config, key, state, reason string
	trust                      []string
	resume, rollback, asJSON   bool
}

func newPromoteCmd(g *globals) *cobra.Command {
	var f promoteFlags
	cmd := &cobra.Command{
		Use:   "promote REF --config canary.yaml --key K.key [--resume | --rollback]",
		Short: "Promote a release by canary analysis against live metrics",
		Long: `Promote runs the canary plan in canary.yaml for the release REF against the
release its environment tag (REPO:ENVIRONMENT) points at now, the baseline.

It checks that REF has a valid signed pass verdict for the environment
(airlock gate), then goes through the plan's steps: it sends each step's
share of traffic to the canary (the router, a Gateway API HTTPRoute, or
nothing when something else moves traffic), and every interval reads each
metric of both releases over the canary's life so far (Prometheus or an
observations file) and judges it with anytime-valid sequential tests:

  fail          the canary is shown worse than the baseline beyond the
                metric's tolerance, or above its limit: roll back now;
  pass          every metric is shown within tolerance: go to the next step;
  inconclusive  neither yet: hold the step until its pause ends, then go on;
  nodata        too few samples: extend the step (no_data.extend, at most
                no_data.max_extensions times), then pause for a human.

The false-alarm rate over every metric and look is at most the plan's
alpha. After the last judged step the environment tag moves to REF (the
canary gets 100%). A rollback sets the canary's weight to 0, engages the
kill-switch when rollback.kill_switch is set, and points the environment
tag back at the baseline if it had moved. Every ending (promoted, rolled
back, paused) is signed with --key and attached to REF as a promotion
record (` + canary.RecordType + `).

The state is saved after every look (--state, default
.airlock/promote/REPO@ENVIRONMENT.json): an interrupted or paused promotion
goes on with --resume (a pause on an inconclusive last step is then
promoted: the human approved), or is rolled back with --rollback.

Exit codes: 0 promoted, 1 rolled back or refused (no pass verdict),
2 paused for a human or an error, 64 usage. See docs/promotion.md.`,
		Example: `  airlock promote localhost:5000/support-bot@sha256:… --config canary.yaml --key release.key
  airlock promote localhost:5000/support-bot@sha256:… --config canary.yaml --key release.key --resume
  airlock promote localhost:5000/support-bot@sha256:… --config canary.yaml --key release.key --rollback --reason "bad answers in support tickets"`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return runPromote(cmd.Context(), g, f, a[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "the canary plan (canary.yaml; required)")
	fl.StringVar(&f.key, "key", "", "private key that signs the promotion record (required)")
	fl.StringSliceVar(&f.trust, "trust", nil, "public keys whose verdicts count, added to the plan's trust:")
	fl.StringVar(&f.state, "state", "", "the promotion's state file (default .airlock/promote/REPO@ENVIRONMENT.json)")
	fl.BoolVar(&f.resume, "resume", false, "go on with a paused or interrupted promotion")
	fl.BoolVar(&f.rollback, "rollback", false, "roll a paused or interrupted promotion back (a human's decision)")
	fl.StringVar(&f.reason, "reason", "", "why, for --rollback (recorded)")
	fl.BoolVar(&f.asJSON, "json", false, "print the promotion record as JSON")
	return cmd
}

func runPromote(ctx context.Context, g *globals, f promoteFlags, refArg string) error {
	switch {
	case f.config == "":
		return usagef("--config canary.yaml is required")
	case f.key == "":
		return usagef("--key is required: every promotion attaches a signed record")
	case f.resume && f.rollback:
		return usagef("give --resume or --rollback, not both")
	case f.reason != "" && !f.rollback:
		return usagef("--reason goes with --rollback")
	}
	ref, err := parseRef(refArg)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(f.config)
	if err != nil {
		return err
	}
	plan, err := canary.ParseConfig(raw, filepath.Dir(f.config))
	if err != nil {
		return fmt.Errorf("%s: %w", f.config, err)
	}
	signer, err := loadSigner(g, f.key)
	if err != nil {
		return err
	}
	var trust []string
	for _, t := range plan.Trust {
		trust = append(trust, plan.Path(t))
	}
	keys, err := loadVerifiers(append(trust, f.trust...))
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return usagef("no trusted key: list public keys under trust: in the plan, or give --trust K.pub")
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	desc, err := c.Resolve(ctx, ref)
	if err != nil {
		return fmt.Errorf("resolving %s: %w", ref, err)
	}
	cand := ref.WithDigest(desc.Digest)
	statePath := f.state
	if statePath == "" {
		statePath = filepath.Join(".airlock", "promote", strings.NewReplacer("/", "_", ":", "_").Replace(ref.Name())+"@"+plan.Environment+".json")
	}
	now := time.Now()
	rec, err := loadRecord(statePath)
	if err != nil {
		return err
	}
	switch {
	case (f.resume || f.rollback) && rec == nil:
		return usagef("nothing to resume: there is no promotion state at %s", statePath)
	case rec != nil && (rec.Phase == canary.Running || rec.Phase == canary.Paused) && !f.resume && !f.rollback:
		return fmt.Errorf("a promotion of %s to %s is %s (state %s): go on with --resume or end it with --rollback", rec.Canary.Digest, rec.Environment, rec.Phase, statePath)
	case (f.resume || f.rollback) && rec.Canary.Digest != desc.Digest.String():
		return fmt.Errorf("the promotion in %s is of %s, not %s", statePath, rec.Canary.Digest, desc.Digest)
	case (f.resume || f.rollback) && (rec.Phase == canary.Promoted || rec.Phase == canary.RolledBack):
		return fmt.Errorf("the promotion in %s has ended: %s", statePath, rec.Phase)
	case !f.resume && !f.rollback:
		rec, err = startRecord(ctx, g, plan, raw, ref, cand, keys, now)
		if err != nil {
			return err
		}
	}
	prov, err := buildProvider(plan)
	if err != nil {
		return err
	}
	act, err := buildActuator(plan)
	if err != nil {
		return err
	}
	if rc, ok := act.(*router.Client); ok && !f.rollback {
		if err := checkRouter(ctx, rc, rec); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p := &canary.Promoter{
		Plan: plan, Provider: prov, Actuator: act, Log: log,
		Save:   func(r *canary.Record) error { return saveRecord(statePath, r) },
		OnLook: func(r *canary.Record, l canary.Look) { printLook(g.stderr, r, l) },
	}
	if f.rollback {
		err = p.Abort(ctx, rec, f.reason)
	} else {
		err = p.Run(ctx, rec)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted; the state is in %s: go on with --resume: %w", statePath, err)
		}
		return err
	}
	finishErr := finishPromotion(ctx, g, rec, ref, keys)
	if rc, ok := act.(*router.Client); ok && rec.Phase == canary.Promoted {
		finishErr = errors.Join(finishErr, promoteRouter(ctx, rc, rec))
	}
	if err := saveRecord(statePath, rec); err != nil {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := sign.Attest(ctx, ref, desc.Digest, signer, canary.RecordType, b, g.signRemote(ref)); err != nil {
		return fmt.Errorf("attaching the promotion record: %w", err)
	}
	if f.asJSON {
		out, _ := json.MarshalIndent(rec, "", "  ")
		fmt.Fprintln(g.stdout, string(out))
	} else {
		fmt.Fprintf(g.stdout, "%s: %s\n", strings.ReplaceAll(string(rec.Phase), "_", " "), rec.Reason)
	}
	if finishErr != nil {
		return finishErr
	}
	switch rec.Phase {
	case canary.RolledBack:
		return exitErr{ExitDeny, errors.New(rec.Reason)}
	case canary.Paused:
		return exitErr{ExitError, fmt.Errorf("%s; go on with airlock promote %s --config %s --key %s --resume (or --rollback)", rec.Reason, cand, f.config, f.key)}
	}
	return nil
}

// startRecord checks the candidate's verdict and finds the baseline: the
// digest the environment tag points at now.
func startRecord(ctx context.Context, g *globals, plan *canary.Config, raw []byte, ref, cand registry.Ref, keys []*sign.Verifier, now time.Time) (*canary.Record, error) {
	c, err := g.client()
	if err != nil {
		return nil, err
	}
	vs, _, err := readVerdicts(ctx, cand, keys, g.signRemote(cand), now)
	if err != nil {
		return nil, err
	}
	if err := gate.Admit(vs, cand.Digest.String(), plan.Environment, now); err != nil {
		return nil, exitErr{ExitDeny, fmt.Errorf("%s may not be promoted to %s: %w", cand, plan.Environment, err)}
	}
	envRef := registry.Ref{Registry: ref.Registry, Repository: ref.Repository, Tag: plan.Environment}
	bd, err := c.Resolve(ctx, envRef)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, fmt.Errorf("%s does not exist: there is no baseline to compare the canary with; a first release is tagged with airlock tag %s %s", envRef, cand, plan.Environment)
	} else if err != nil {
		return nil, fmt.Errorf("resolving the baseline %s: %w", envRef, err)
	}
	if bd.Digest == cand.Digest {
		return nil, fmt.Errorf("%s already points at %s: nothing to promote", envRef, cand.Digest)
	}
	lastGood := bd.Digest.String()
	bref := ref.WithDigest(bd.Digest)
	bvs, _, err := readVerdicts(ctx, bref, keys, g.signRemote(bref), now)
	if err == nil {
		err = gate.Admit(bvs, lastGood, plan.Environment, now)
	}
	if err != nil {
		fmt.Fprintf(g.stderr, "warning: the baseline %s has no valid pass verdict for %s (%v); a rollback will not point the tag back at it\n", bd.Digest, plan.Environment, err)
		lastGood = ""
	}
	sum := sha256.Sum256(raw)
	return canary.NewRecord(plan, "sha256:"+hex.EncodeToString(sum[:]), ref.Name(),
		canary.Variant{Name: plan.Baseline.Name, Digest: bd.Digest.String()},
		canary.Variant{Name: plan.Canary.Name, Digest: cand.Digest.String()}, lastGood), nil
}

// finishPromotion moves the environment tag: to the canary when promoted;
// back to the last good digest when rolled back, if it had moved.
func finishPromotion(ctx context.Context, g *globals, rec *canary.Record, ref registry.Ref, keys []*sign.Verifier) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	act := func(what string, err error) {
		a := canary.Action{At: time.Now(), What: what}
		if err != nil {
			a.Error = err.Error()
		}
		rec.Actions = append(rec.Actions, a)
	}
	envRef := registry.Ref{Registry: ref.Registry, Repository: ref.Repository, Tag: rec.Environment}
	switch rec.Phase {
	case canary.Promoted:
		_, err := c.Tag(ctx, ref.WithDigest(digest.Digest(rec.Canary.Digest)), rec.Environment)
		act(fmt.Sprintf("tag %s → %s", rec.Environment, rec.Canary.Digest), err)
		if err != nil {
			return tagRefused(fmt.Errorf("moving %s to the promoted canary: %w", envRef, err))
		}
	case canary.RolledBack:
		if rec.LastGood == "" {
			act("tag "+rec.Environment+" left alone", errors.New("no last good digest with a pass verdict was known"))
			return nil
		}
		cur, err := c.Resolve(ctx, envRef)
		if err == nil && cur.Digest.String() == rec.LastGood {
			return nil
		}
		_, err = c.Tag(ctx, ref.WithDigest(digest.Digest(rec.LastGood)), rec.Environment)
		act(fmt.Sprintf("tag %s → %s (last good)", rec.Environment, rec.LastGood), err)
		if err != nil {
			return tagRefused(fmt.Errorf("pointing %s back at %s: %w", envRef, rec.LastGood, err))
		}
	}
	return nil
}

// checkRouter refuses to judge a router that serves other releases than the
// promotion's: its metrics would be about something else.
func checkRouter(ctx context.Context, rc *router.Client, rec *canary.Record) error {
	st, err := rc.State(ctx)
	if err != nil {
		return fmt.Errorf("reading the router's state: %w", err)
	}
	if st.Canary == nil {
		return errors.New("the router has no canary upstream: give it one (router.yaml canary:, or PUT /admin/upstreams) serving " + rec.Canary.Digest)
	}
	if d := st.Canary.Digest; d != "" && d != rec.Canary.Digest {
		return fmt.Errorf("the router's canary upstream serves %s, not the release being promoted, %s", d, rec.Canary.Digest)
	}
	if d := st.Stable.Digest; d != "" && d != rec.Baseline.Digest {
		return fmt.Errorf("the router's stable upstream serves %s, not the baseline %s (what %s points at)", d, rec.Baseline.Digest, rec.Environment)
	}
	return nil
}

// promoteRouter makes the promoted canary the router's stable upstream, so
// that its kill-switch falls back to the release now in the environment.
func promoteRouter(ctx context.Context, rc *router.Client, rec *canary.Record) error {
	st, err := rc.State(ctx)
	if err == nil && st.Canary != nil {
		err = rc.SetUpstreams(ctx, router.Upstreams{Stable: st.Canary, Weight: 0})
	}
	a := canary.Action{At: time.Now(), What: "router: the canary upstream becomes the stable one"}
	if err != nil {
		a.Error = err.Error()
		err = fmt.Errorf("making the canary the router's stable upstream: %w", err)
	}
	rec.Actions = append(rec.Actions, a)
	return err
}

func buildProvider(plan *canary.Config) (canary.Provider, error) {
	if plan.Provider.File != "" {
		return canary.LoadFile(plan.Path(plan.Provider.File))
	}
	return prometheus.New(*plan.Provider.Prometheus, prometheus.Options{})
}

func buildActuator(plan *canary.Config) (canary.Actuator, error) {
	a := plan.Actuator
	switch {
	case a.Router != nil:
		token := ""
		if a.Router.TokenFile != "" {
			b, err := os.ReadFile(plan.Path(a.Router.TokenFile))
			if err != nil {
				return nil, err
			}
			token = strings.TrimSpace(string(b))
		}
		return router.NewClient(a.Router.URL, token, &http.Client{Timeout: 10 * time.Second}), nil
	case a.GatewayAPI != nil:
		dc, err := gatewayapi.FromKubeconfig(plan.Path(a.GatewayAPI.Kubeconfig))
		if err != nil {
			return nil, err
		}
		return gatewayapi.New(dc, *a.GatewayAPI, gatewayapi.Options{})
	}
	return canary.None{}, nil
}

func loadRecord(path string) (*canary.Record, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var r canary.Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("reading the promotion state %s: %w", path, err)
	}
	if r.Schema != canary.RecordType {
		return nil, fmt.Errorf("%s is not a promotion state (schema %q)", path, r.Schema)
	}
	return &r, nil
}

// saveRecord writes the state atomically: a crash leaves the old or the new.
func saveRecord(path string, r *canary.Record) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".promote-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// printLook writes one look as a line of the promotion's log.
func printLook(w io.Writer, r *canary.Record, l canary.Look) {
	fmt.Fprintf(w, "step %d (%d%%) +%s: %s → %s\n", l.Step+1, l.Weight, l.At.Sub(r.Started).Round(time.Second), l.Assessment.Status, l.Decision)
	for _, m := range l.Assessment.Results {
		fmt.Fprintf(w, "  %-12s %s\n", m.Status, m.Reason)
	}
}
