package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/airlock-dev/airlock/evals"
	"github.com/airlock-dev/airlock/evals/suites"

	"github.com/airlock-dev/airlock/registry"
	"github.com/airlock-dev/airlock/registry/client"
	"github.com/airlock-dev/airlock/registry/pack"
	"github.com/airlock-dev/airlock/registry/sign"
	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/evaljob"
	"github.com/airlock-dev/airlock/runner/gpu"
	"github.com/airlock-dev/airlock/runner/openai"
)

type evalFlags struct {
	suite                                   string
	eng                                     engineSpec
	place                                   placement
	timeout                                 time.Duration
	baseline, baselineEndpoint, baselineCmd string
	baselineDir, baselineModel              string
	baselineReport, baselineImport          string
	baselineKeys                            []string
	vars                                    []string
	importFile                              string
	margin, alpha, confidence, minPassRate  float64
	power, discordance                      float64
	samples, concurrency, retries           int
	ks                                      []int
	seed                                    uint64
	resamples                               int
	judgeEndpoint, judgeModel               string
	pairwise                                string
	prices                                  string
	cacheDir                                string
	noCache                                 bool
	report, markdown                        string
	attach                                  bool
	keyPath                                 string
}

func newEvalCmd(g *globals) *cobra.Command {
	var f evalFlags
	cmd := &cobra.Command{
		Use:   "eval [REF] --suite FILE (--endpoint URL | --engine process --cmd TEMPLATE | --import FORMAT:FILE)",
		Short: "Run an eval suite against a release, with intervals and a paired comparison against the baseline",
		Long: `Eval sends every item of a suite to the model as the release ships it, scores
each answer, and writes a report with per-item outcomes and metrics with
intervals. With --baseline it runs the same items against the release the
candidate would replace and tests non-inferiority on the paired outcomes.

The suite: --suite FILE (YAML, or JSONL for large sets; the schema is
docs/schemas/eval-suite.v1.json), --suite release:NAME for a suite the
release carries (airlock.yaml's evals), or --suite builtin:NAME for the
adversarial starting sets (` + strings.Join(suites.Names(), ", ") + `).

As shipped: with REF (or --dir) the release's system prompt (the prompt
named "system") is sent first, {{var}} template variables are filled from
each item's vars, over --var NAME=VALUE, over the suite's (a variable with
no value is an error naming it), and its safety file is applied: limits
(max_output_tokens, temperature, top_p, stop) and engine (extra request
fields) go to the engine, pii.redact_output is applied to answers before
scoring, and refusal.message counts as a refusal. A prompt-only change is
therefore evaluated as released.

Engines are bench's: --endpoint URL (any OpenAI-compatible server) or
--cmd TEMPLATE on the release's files (see airlock bench --help). Failed
requests are retried (--retries, honouring Retry-After) and a sample that
still has no answer counts as a failure, listed by error class.

Metrics: pass rate with its Wilson interval, unbiased pass@k (--samples N
per item, --k), the safety violation rate of items tagged safety with its
upper bound (the exact zero-events bound when none failed: about 3/n at
95%), the refusal rate of benign items, latency percentiles, cost per
success with --prices FILE (USD per million tokens per model:
"MODEL: {input_per_mtok: 0.5, output_per_mtok: 1.5}"), and each tag's pass
rate.

Baseline: --baseline REF with --baseline-endpoint URL, or with the process
engine the baseline pulled and served by --baseline-cmd (default --cmd);
or --baseline-key K.pub, which uses the baseline's signed eval attestation
of the same suite (verified with that key) instead of running it again;
or --baseline-report FILE (an earlier eval report of the baseline on the
same suite) or --baseline-import FORMAT:FILE. The comparison pairs items by
id: exact McNemar test, paired bootstrap, win/loss/tie per item, the items
that flipped, and the verdict at --margin: non-inferior, inferior,
inconclusive, or insufficient evidence when there are fewer items than the
margin needs (never a pass). --pairwise-rubric TEXT also has the judge
compare each item's two answers side by side, in both orders (a win counts
only when both agree), and reports the win rate with a sign test.

Rubric assertions are scored by a judge model: --judge-endpoint URL (and
--judge-model). It must answer with a score on the rubric's scale; any other
answer fails the eval with the item named.

Evidence from other tools: --import promptfoo:results.json (promptfoo eval
-o) or lm-eval:samples.jsonl (lm-evaluation-harness --log_samples) scores
nothing and reports the file's per-item outcomes with the same statistics.

Cache: generations are recorded as they finish under --cache-dir, keyed by
(release digest, suite digest, engine, model, seed, samples); a re-run with
the same key sends only what is missing, so an interrupted eval resumes.
Failed generations are not cached. Only runs with a release digest are
cached.

Exit codes: 0 the eval ran and, with --baseline, the candidate is
non-inferior (with --min-pass-rate, the pass rate's lower bound reaches it);
1 inferior (or the pass rate's upper bound is below --min-pass-rate);
2 an error, or a result that cannot decide: inconclusive or insufficient
evidence; 64 usage.`,
		Example: `  airlock eval localhost:5000/support-bot:1.5.0 --suite evals/golden.yaml --endpoint http://127.0.0.1:8001 \
      --baseline localhost:5000/support-bot:1.4.0 --baseline-endpoint http://127.0.0.1:8000 --margin 0.05
  airlock eval localhost:5000/support-bot:1.5.0 --suite release:golden \
      --cmd 'llama-server -m {{.Dir}}/model/model.gguf --port {{.Port}}' --attach --key cosign.key
  airlock eval localhost:5000/support-bot:1.5.0 --suite builtin:jailbreak --var customer_name=Alex \
      --var order_id=A-1001 --endpoint http://127.0.0.1:8001
  airlock eval --import promptfoo:results.json --baseline-import promptfoo:before.json --margin 0.05`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return runEval(cmd.Context(), g, f, a)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.suite, "suite", "", "the eval suite: a YAML or JSONL file, release:NAME (the release's own), or builtin:NAME")
	fl.StringArrayVar(&f.vars, "var", nil, "a template variable, NAME=VALUE (repeatable): over the suite's vars, under an item's own")
	f.eng.addFlags(fl, "base URL of an OpenAI-compatible server serving the candidate",
		"the release directory (airlock.yaml): its prompts and safety file, and the process engine's files (default: REF pulled)")
	f.place.addFlags(fl)
	fl.StringVar(&f.baseline, "baseline", "", "the release the candidate would replace (REF)")
	fl.StringVar(&f.baselineEndpoint, "baseline-endpoint", "", "base URL of a server serving the baseline")
	fl.StringVar(&f.baselineCmd, "baseline-cmd", "", "process engine: the baseline's serving command template (default --cmd)")
	fl.StringVar(&f.baselineDir, "baseline-dir", "", "the baseline's release directory (default: --baseline pulled)")
	fl.StringVar(&f.baselineModel, "baseline-model", "", "model name to request from the baseline's server")
	fl.StringVar(&f.baselineReport, "baseline-report", "", "an earlier eval report (JSON) of the baseline on the same suite")
	fl.StringArrayVar(&f.baselineKeys, "baseline-key", nil, "use the baseline's signed eval attestation of this suite, verified with this public key (repeatable), instead of running it")
	fl.StringVar(&f.baselineImport, "baseline-import", "", "the baseline's outcomes from another tool: promptfoo:FILE or lm-eval:FILE")
	fl.StringVar(&f.importFile, "import", "", "score nothing: read the candidate's outcomes from promptfoo:FILE or lm-eval:FILE")
	fl.Float64Var(&f.margin, "margin", 0.02, "non-inferiority margin: the loss in pass rate allowed against the baseline (0.02 is 2 points)")
	fl.Float64Var(&f.alpha, "alpha", 0.05, "one-sided level of the non-inferiority test")
	fl.Float64Var(&f.power, "power", 0.8, "power the minimum number of items is computed for")
	fl.Float64Var(&f.discordance, "discordance", 0, "share of items expected to flip, for the minimum number of items (default: observed, at least 0.1)")
	fl.Float64Var(&f.confidence, "confidence", 0.95, "confidence of intervals and bounds")
	fl.Float64Var(&f.minPassRate, "min-pass-rate", 0, "without --baseline: fail (exit 1) when the pass rate's upper bound is below this, pass when its lower bound reaches it")
	fl.IntVar(&f.samples, "samples", 1, "samples per item, for items that do not set n (pass@k needs k or more)")
	fl.IntSliceVar(&f.ks, "k", nil, "k of pass@k (default 1, and --samples when above 1)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed: sample i is requested with seed+i, and the bootstrap uses it")
	fl.IntVar(&f.resamples, "bootstrap", 10000, "paired bootstrap resamples")
	fl.IntVar(&f.concurrency, "concurrency", 8, "requests in flight")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "per-attempt request timeout")
	fl.IntVar(&f.retries, "retries", 4, "attempts per request after the first, for errors worth retrying")
	fl.StringVar(&f.judgeEndpoint, "judge-endpoint", "", "base URL of the judge model's OpenAI-compatible server, for rubric assertions")
	fl.StringVar(&f.judgeModel, "judge-model", "", "the judge model's name (default: the only or first one its server lists)")
	fl.StringVar(&f.pairwise, "pairwise-rubric", "", "with a baseline that is run and --judge-endpoint: judge each item's two answers side by side with this rubric, in both orders")
	fl.StringVar(&f.prices, "prices", "", "token prices per model (YAML: MODEL: {input_per_mtok, output_per_mtok}), for cost assertions and cost per success")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "where generations are cached (default: the user cache directory's airlock/evals)")
	fl.BoolVar(&f.noCache, "no-cache", false, "neither read nor write the cache")
	fl.StringVarP(&f.report, "output", "o", "eval-report.json", "write the JSON report here (- for stdout)")
	fl.StringVar(&f.markdown, "markdown", "", "also write a Markdown summary here; $GITHUB_STEP_SUMMARY is appended to")
	fl.BoolVar(&f.attach, "attach", false, "attach the report to REF as a signed eval attestation (needs --key)")
	fl.StringVar(&f.keyPath, "key", "", "private key for --attach")
	return cmd
}

// evalSide is one arm of an eval: where its samples come from.
type evalSide struct {
	name    string // "candidate" or "baseline"
	ref     *registry.Ref
	digest  string
	engine  engineSpec
	useEng  bool
	imp     string           // FORMAT:FILE
	report  string           // an earlier report
	keys    []*sign.Verifier // its signed eval attestation, verified with these
	shipped *evals.Shipped
	shipRef *evals.ShippedRef
	model   string
}

func runEval(ctx context.Context, g *globals, f evalFlags, a []string) error {
	// The command line first: nothing starts before it is known to be whole.
	cand := &evalSide{name: "candidate", imp: f.importFile}
	if cand.imp == "" {
		cand.useEng = true
		cand.engine = f.eng
		cand.engine.keepOutput, cand.engine.maxConns = true, f.concurrency
		if err := cand.engine.check(len(a) > 0); err != nil {
			return err
		}
		if err := f.place.check(cand.engine.kind); err != nil {
			return err
		}
		if f.suite == "" {
			return usagef("--suite is required (a YAML or JSONL file, release:NAME or builtin:NAME)")
		}
	} else if f.eng.endpoint != "" || f.eng.cmdTemplate != "" {
		return usagef("--import reads outcomes from a file: give no --endpoint or --cmd")
	}
	if !(f.margin > 0 && f.margin < 1) {
		return usagef("--margin %v: want a loss in pass rate between 0 and 1, such as 0.02", f.margin)
	}
	if !(f.alpha > 0 && f.alpha < 0.5) || !(f.confidence > 0 && f.confidence < 1) || !(f.power > 0 && f.power < 1) {
		return usagef("--alpha wants (0, 0.5), --confidence and --power want (0, 1)")
	}
	if f.samples < 1 || f.concurrency < 1 || f.retries < 0 || f.resamples < 1 {
		return usagef("--samples, --concurrency and --bootstrap must be at least 1, --retries at least 0")
	}
	if f.minPassRate < 0 || f.minPassRate > 1 {
		return usagef("--min-pass-rate %v: want 0 to 1", f.minPassRate)
	}
	if f.attach && (len(a) == 0 || f.keyPath == "") {
		return usagef("--attach needs REF and --key")
	}
	var base *evalSide
	sources := 0
	for _, s := range []string{f.baselineEndpoint, f.baselineReport, f.baselineImport} {
		if s != "" {
			sources++
		}
	}
	if len(f.baselineKeys) > 0 {
		if f.baseline == "" {
			return usagef("--baseline-key verifies the signed eval attestation of --baseline REF: give --baseline")
		}
		sources++
	}
	if f.baselineCmd != "" || (f.baseline != "" && cand.engine.kind == "process" && f.baselineEndpoint == "" && len(f.baselineKeys) == 0 &&
		f.baselineReport == "" && f.baselineImport == "") {
		sources++
	}
	switch {
	case sources > 1:
		return usagef("give the baseline one way: --baseline-endpoint, --baseline-cmd (or --cmd), --baseline-key, --baseline-report or --baseline-import")
	case sources == 0 && f.baseline != "":
		return usagef("--baseline %s: say how to reach it: --baseline-endpoint URL, the process engine (--cmd), --baseline-key (its signed eval), --baseline-report or --baseline-import", f.baseline)
	case sources == 1:
		base = &evalSide{name: "baseline", imp: f.baselineImport, report: f.baselineReport}
		if len(f.baselineKeys) > 0 {
			if f.suite == "" {
				return usagef("--baseline-key needs --suite: the attestation must be of the same suite")
			}
			keys, err := loadVerifiers(f.baselineKeys)
			if err != nil {
				return err
			}
			base.keys = keys
		} else if f.baselineEndpoint != "" || f.baselineCmd != "" || (f.baseline != "" && cand.engine.kind == "process") {
			if f.suite == "" {
				return usagef("running the baseline needs --suite")
			}
			cmdT := f.baselineCmd
			if cmdT == "" && f.baselineEndpoint == "" {
				cmdT = f.eng.cmdTemplate
			}
			base.useEng = true
			base.engine = engineSpec{endpoint: f.baselineEndpoint, cmdTemplate: cmdT, dir: f.baselineDir, model: f.baselineModel,
				readyTimeout: f.eng.readyTimeout, keepOutput: true, maxConns: f.concurrency}
			if err := base.engine.check(f.baseline != ""); err != nil {
				return usagef("baseline: %v", err)
			}
		}
	}

	// The suite, and its digest: the bytes of the file.
	var suite *evals.Suite
	var suiteRef evals.SuiteRef
	if f.suite != "" {
		var data []byte
		var name string
		var err error
		if rel, ok := strings.CutPrefix(f.suite, "release:"); ok {
			data, name, err = releaseSuite(ctx, g, a, f.eng.dir, rel)
		} else {
			data, name, err = readSuite(f.suite)
		}
		if err != nil {
			return err
		}
		s, err := evals.ParseSuite(data, name)
		if err != nil {
			return err
		}
		for _, kv := range f.vars {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return usagef("--var %q: want NAME=VALUE", kv)
			}
			if s.Vars == nil {
				s.Vars = map[string]string{}
			}
			s.Vars[k] = v
		}
		suite = s
		suiteRef = evals.SuiteRef{Name: s.Name, Digest: evals.Digest(data), Items: len(s.Items)}
		if hasRubric(s) && f.judgeEndpoint == "" && cand.useEng {
			return usagef("suite %s has rubric assertions: give --judge-endpoint (an OpenAI-compatible server with the judge model)", s.Name)
		}
	}
	if f.pairwise != "" && (f.judgeEndpoint == "" || base == nil || !base.useEng) {
		return usagef("--pairwise-rubric needs --judge-endpoint and a baseline that is run (--baseline-endpoint or the process engine), for both arms' answers")
	}
	prices, err := readPrices(f.prices)
	if err != nil {
		return err
	}

	var c *client.Client
	if len(a) == 1 {
		r, err := parsePinnedRef(a[0])
		if err != nil {
			return err
		}
		cand.ref = &r
	}
	if f.baseline != "" && base != nil {
		r, err := parsePinnedRef(f.baseline)
		if err != nil {
			return err
		}
		base.ref = &r
	}
	var signer *sign.Signer
	if f.attach {
		if signer, err = loadSigner(g, f.keyPath); err != nil {
			return err
		}
	}
	if cand.ref != nil || (base != nil && base.ref != nil) {
		if c, err = g.client(); err != nil {
			return err
		}
	}

	var judge *evaljob.Judge
	if f.judgeEndpoint != "" {
		je, err := openai.New(openai.Options{BaseURL: f.judgeEndpoint, APIKey: os.Getenv(EnvOpenAIKey), Model: f.judgeModel,
			KeepOutput: true, MaxConns: f.concurrency, UserAgent: "airlock/" + version()})
		if err != nil {
			return usageError{err}
		}
		m := f.judgeModel
		if m == "" {
			if m, err = je.ResolveModel(ctx); err != nil {
				return fmt.Errorf("finding the judge model at %s: %w", f.judgeEndpoint, err)
			}
		}
		judge = &evaljob.Judge{Engine: je, Model: m, Timeout: f.timeout, Retry: evalRetry(f.retries), Ctx: ctx}
	}
	cacheRoot := f.cacheDir
	if cacheRoot == "" && cacheDir() != "" {
		cacheRoot = filepath.Join(cacheDir(), "evals")
	}
	if judge != nil && !f.noCache && cacheRoot != "" {
		jc, err := evaljob.OpenJudgeCache(cacheRoot)
		if err != nil {
			return err
		}
		defer func() {
			if err := jc.Close(); err != nil {
				fmt.Fprintf(g.stderr, "closing the judge cache: %v\n", err)
			}
		}()
		judge.Cache = jc
	}

	runID := newRunID()
	rep := &evals.Report{Schema: evals.ReportSchema, RunID: runID, Tool: "airlock/" + version(), Suite: suiteRef, Seed: f.seed,
		Started: time.Now().UTC()}
	inv, _ := gpu.Open(gpu.Options{})
	defer func() { _ = inv.Close() }()
	q, err := newQueue(g, inv, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer func() { _ = q.Close(context.WithoutCancel(ctx)) }()
	run := func(side *evalSide, dir string) ([]evals.Sample, evals.EngineRef, error) {
		return runEvalSide(ctx, g, f, side, c, suite, suiteRef, dir, judge, prices, cacheRoot, q, rep)
	}
	// Baseline evidence that is read, not run, is read first: a wrong
	// file or a missing attestation fails before anything is sent.
	var bs []evals.Sample
	var beng evals.EngineRef
	if base != nil && !base.useEng {
		if bs, beng, err = run(base, f.baselineDir); err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
	}
	candSamples, candEngine, err := run(cand, f.eng.dir)
	if err != nil {
		return err
	}
	rep.Engine = candEngine
	rep.Shipped = cand.shipRef
	if cand.ref != nil && cand.digest == "" { // imported evidence about REF
		desc, err := c.Resolve(ctx, *cand.ref)
		if err != nil {
			return err
		}
		cand.digest = desc.Digest.String()
	}
	if cand.ref != nil {
		rep.Release = &evals.ReleaseRef{Ref: cand.ref.String(), Digest: cand.digest}
	}
	if cand.imp != "" {
		rep.Imported = strings.SplitN(cand.imp, ":", 2)[0]
	}
	if suite == nil { // imported: the suite is the file
		data, _ := os.ReadFile(strings.SplitN(cand.imp, ":", 2)[1])
		rep.Suite = evals.SuiteRef{Name: filepath.Base(strings.SplitN(cand.imp, ":", 2)[1]), Digest: evals.Digest(data), Items: countItems(candSamples)}
	}
	rep.Samples = candSamples
	o := evals.SummaryOptions{Confidence: f.confidence, Ks: f.ks}
	if rep.Metrics, err = evals.Summarize(candSamples, o); err != nil {
		return fmt.Errorf("summarising the candidate: %w", err)
	}

	if base != nil {
		if base.useEng {
			if bs, beng, err = run(base, f.baselineDir); err != nil {
				return fmt.Errorf("baseline: %w", err)
			}
		}
		bl := &evals.Baseline{Engine: beng, Shipped: base.shipRef}
		if base.ref != nil {
			bl.Release = evals.ReleaseRef{Ref: base.ref.String(), Digest: base.digest}
		} else {
			bl.Release = evals.ReleaseRef{Ref: cmpNonEmpty(f.baselineReport, f.baselineImport, f.baselineEndpoint)}
		}
		if bl.Metrics, err = evals.Summarize(bs, o); err != nil {
			return fmt.Errorf("summarising the baseline: %w", err)
		}
		bl.Paired, err = evals.ComparePaired(bs, candSamples, evals.CompareOptions{Margin: f.margin, Alpha: f.alpha, Power: f.power,
			Discordance: f.discordance}, f.resamples, f.seed)
		if err != nil {
			return err
		}
		bl.Samples = bs
		if f.pairwise != "" {
			fmt.Fprintf(g.stderr, "judging %d items side by side, in both orders\n", len(suite.Items))
			if bl.Pairwise, err = judge.Pairwise(suite, f.pairwise, bs, candSamples); err != nil {
				return err
			}
		}
		rep.Baseline = bl
	}
	rep.Duration = time.Since(rep.Started).Seconds()
	if judge != nil {
		cached := 0
		if judge.Cache != nil {
			cached = judge.Cache.Len()
		}
		fmt.Fprintf(g.stderr, "judge %s: asked %d questions; %d answers are in the judge cache\n", judge.Model, judge.Asked.Load(), cached)
	}

	if err := writeReport(g, f.report, rep.WriteJSON); err != nil {
		return err
	}
	if f.markdown != "" {
		if err := writeSummary(g, f.markdown, rep.WriteMarkdown); err != nil {
			return err
		}
	}
	printEvalSummary(g.stderr, rep)
	if f.attach {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		d, err := digest.Parse(cand.digest)
		if err != nil {
			return err
		}
		if err := sign.Attest(ctx, *cand.ref, d, signer, evals.ReportSchema, b, g.signRemote(*cand.ref)); err != nil {
			return fmt.Errorf("attaching the eval attestation: %w", err)
		}
		fmt.Fprintf(g.stderr, "attached the eval attestation to %s with key %s\n", cand.digest, signer.KeyID[:16])
	}
	return evalOutcome(rep, f.minPassRate)
}

// evalOutcome is the exit status of an eval: the paired verdict with a
// baseline, the pass rate's interval against --min-pass-rate without.
func evalOutcome(rep *evals.Report, minPass float64) error {
	if bl := rep.Baseline; bl != nil {
		switch bl.Paired.Verdict {
		case evals.NonInferior:
			return nil
		case evals.Inferior:
			return exitErr{ExitDeny, fmt.Errorf("the candidate is worse than the baseline by more than the margin (%+.1f points, p = %.3g; %d items regressed)",
				100*bl.Paired.Delta, bl.Paired.PValue, len(bl.Paired.Regressed))}
		case evals.InsufficientEvidence:
			return exitErr{ExitError, fmt.Errorf("insufficient evidence: %d paired items, %d needed for a %.1f-point margin; not a pass",
				bl.Paired.N, bl.Paired.MinN, 100*bl.Paired.Margin)}
		default:
			return exitErr{ExitError, fmt.Errorf("inconclusive: the interval [%+.1f, %+.1f] points includes a loss beyond the margin; not a pass",
				100*bl.Paired.CI.Lo, 100*bl.Paired.CI.Hi)}
		}
	}
	if minPass > 0 {
		pr := rep.Metrics.PassRate
		switch {
		case pr.Interval.Hi < minPass:
			return exitErr{ExitDeny, fmt.Errorf("pass rate %s is below %.1f%%", pr, 100*minPass)}
		case pr.Interval.Lo < minPass:
			return exitErr{ExitError, fmt.Errorf("pass rate %s: %d items cannot show it reaches %.1f%%; not a pass", pr, pr.Items, 100*minPass)}
		}
	}
	return nil
}

func runEvalSide(ctx context.Context, g *globals, f evalFlags, side *evalSide, c *client.Client, suite *evals.Suite, suiteRef evals.SuiteRef,
	dir string, judge *evaljob.Judge, prices map[string]evaljob.Price, cacheRoot string, q *runner.Queue, rep *evals.Report) ([]evals.Sample, evals.EngineRef, error) {
	switch {
	case side.imp != "":
		ss, info, notes, err := importSamples(side.imp)
		for _, n := range notes {
			rep.Notes = append(rep.Notes, side.name+": "+n)
		}
		return ss, info, err
	case side.report != "":
		return readBaselineReport(side.report, suiteRef, side.ref)
	case side.keys != nil:
		return signedBaseline(ctx, g, c, side, suiteRef, rep)
	}
	none := evals.EngineRef{}
	// The release's prompts and safety settings: pulled (those two parts
	// only, until a server must be started on its files), or read from
	// --dir.
	var relFile *pack.Release
	pulled := false
	if side.ref != nil && dir == "" {
		tmp, err := os.MkdirTemp("", "airlock-eval-")
		if err != nil {
			return nil, none, err
		}
		defer os.RemoveAll(tmp)
		res, err := pullRelease(ctx, g, c, side, tmp, []registry.Role{registry.RolePrompt, registry.RoleSafety})
		if err != nil {
			return nil, none, err
		}
		side.digest = res.Release.Descriptor.Digest.String()
		relFile = res.Release.File
		dir, pulled = tmp, true
	} else if dir != "" {
		data, err := os.ReadFile(filepath.Join(dir, pack.DefaultFile))
		if err != nil {
			return nil, none, fmt.Errorf("%s: reading the release file: %w", side.name, err)
		}
		p, err := pack.Parse(data, filepath.Join(dir, pack.DefaultFile))
		if err != nil {
			return nil, none, err
		}
		relFile = &p.Release
		if side.ref != nil {
			d, err := c.Resolve(ctx, *side.ref)
			if err != nil {
				return nil, none, err
			}
			side.digest = d.Digest.String()
		}
	}
	if relFile != nil {
		sh, ref, err := loadShipped(dir, relFile)
		if err != nil {
			return nil, none, fmt.Errorf("%s: %w", side.name, err)
		}
		side.shipped, side.shipRef = sh, ref
	} else {
		rep.Notes = append(rep.Notes, fmt.Sprintf("No release was given for the %s (REF or --dir): the items' messages were sent as they are, without a release's system prompt or safety settings.", side.name))
	}

	// The cache first: when it has every sample, no server is started.
	var cache *evaljob.Cache
	if !f.noCache && side.digest != "" && cacheRoot != "" {
		key := evaljob.CacheKey{Release: side.digest, Suite: suiteRef.Digest, Engine: side.engine.kind, Model: side.engine.model, Seed: f.seed, Samples: f.samples}
		if side.engine.kind == "process" {
			key.Command = side.engine.cmdTemplate
		}
		var err error
		if cache, err = evaljob.OpenCache(cacheRoot, key); err != nil {
			return nil, none, err
		}
		defer func() {
			if err := cache.Close(); err != nil {
				fmt.Fprintf(g.stderr, "%s: closing the cache: %v\n", side.name, err)
			}
		}()
		if n := cache.Len(); n > 0 {
			fmt.Fprintf(g.stderr, "%s: %d samples from the cache (%s)\n", side.name, n, cache.Path())
		}
		if cache.Dropped > 0 {
			fmt.Fprintf(g.stderr, "%s: dropped %d torn line from the cache; it is asked again\n", side.name, cache.Dropped)
		}
	}
	opts := evaljob.Options{Suite: suite, Shipped: side.shipped, Model: side.engine.model, Samples: f.samples, Seed: f.seed,
		Concurrency: f.concurrency, Timeout: f.timeout, Retry: evalRetry(f.retries), Price: nil, Cache: cache}
	if judge != nil {
		opts.Judge = judge
	}
	pending, err := evaljob.Pending(opts)
	if err != nil {
		return nil, none, err
	}
	// Generation is a job on the runner's queue, which places a server the
	// process engine starts on GPUs with room.
	var res *evaljob.Result
	var info evals.EngineRef
	job := f.place.job(rep.RunID+"-"+side.name, runner.JobEval, func(ctx context.Context, a runner.Assignment) error {
		var eng runner.Engine
		model := side.engine.model
		if pending > 0 {
			if pulled && side.engine.kind == "process" {
				if _, err := pullRelease(ctx, g, c, side, dir, nil); err != nil {
					return err
				}
			}
			side.engine.dir, side.engine.env, side.engine.where = dir, a.Env(), where(a)
			e, m, stop, err := side.engine.start(ctx, g)
			defer stop()
			if err != nil {
				return err
			}
			eng, model = e, m
		} else if cache != nil && model == "" {
			model = cache.Model()
		}
		side.model = model
		opts.Model = model
		info = evals.EngineRef{Kind: side.engine.kind, Model: model, Endpoint: side.engine.endpoint}
		if prices != nil {
			p, ok := prices[model]
			if !ok {
				return usagef("--prices has no price for model %q", model)
			}
			opts.Price = &p
		}
		prog := newCountProgress(g, side.name+" samples")
		opts.Progress = prog.set
		var err error
		res, err = evaljob.Run(ctx, eng, opts)
		prog.finish()
		return err
	})
	if err := runQueued(ctx, q, job); err != nil {
		if cache != nil && ctx.Err() != nil {
			fmt.Fprintf(g.stderr, "%s: interrupted; %d samples are in the cache, and the same command resumes from there\n", side.name, cache.Len())
		}
		return nil, info, err
	}
	if side.name == "candidate" {
		rep.Cached = res.Cached
	}
	fmt.Fprintf(g.stderr, "%s: %d samples (%d from the cache) in %s\n", side.name, len(res.Samples), res.Cached, res.Duration.Round(time.Millisecond))
	return res.Samples, info, nil
}

// pullRelease pulls side's release into dir: the roles given, or all.
func pullRelease(ctx context.Context, g *globals, c *client.Client, side *evalSide, dir string, roles []registry.Role) (*client.PullResult, error) {
	p := newProgress(g, "pulling "+side.name, 0)
	res, err := c.Pull(ctx, *side.ref, dir, client.PullOptions{Cache: hashCache(false), Roles: roles})
	p.finish()
	if err != nil {
		return nil, err
	}
	what := "prompts and safety settings of"
	if roles == nil {
		what = "all of"
	}
	fmt.Fprintf(g.stderr, "%s: pulled %s %s\n", side.name, what, res.Release.Descriptor.Digest)
	return res, nil
}

// signedBaseline reads the baseline's outcomes from its eval attestations:
// verified with the trusted keys, about its digest, of this suite. With
// several, the latest.
func signedBaseline(ctx context.Context, g *globals, c *client.Client, side *evalSide, suite evals.SuiteRef, rep *evals.Report) ([]evals.Sample, evals.EngineRef, error) {
	none := evals.EngineRef{}
	desc, err := c.Resolve(ctx, *side.ref)
	if err != nil {
		return nil, none, err
	}
	side.digest = desc.Digest.String()
	vr, err := sign.Verify(ctx, *side.ref, desc.Digest, side.keys, sign.VerifyOptions{Layout: sign.LayoutBundle, PredicateType: evals.ReportSchema},
		g.signRemote(*side.ref))
	if err != nil {
		// Not a deny: the candidate was not judged (exit 2, not verify's 1).
		return nil, none, exitErr{ExitError, fmt.Errorf("%s has no eval attestation to use: %w", side.ref, err)}
	}
	var best *evals.Report
	var from sign.Match
	var suites []string
	for _, m := range vr.Matches {
		var r evals.Report
		if err := json.Unmarshal(m.Predicate, &r); err != nil {
			return nil, none, fmt.Errorf("%s: eval attestation %s: %w", side.ref, m.Referrer, err)
		}
		if r.Suite.Digest != suite.Digest || len(r.Samples) == 0 {
			suites = append(suites, fmt.Sprintf("%s (%s)", r.Suite.Name, short(r.Suite.Digest)))
			continue
		}
		if best == nil || r.Started.After(best.Started) {
			best, from = &r, m
		}
	}
	if best == nil {
		return nil, none, fmt.Errorf("%s has signed eval attestations only of other suites: %s; this is %s (%s)",
			side.ref, strings.Join(suites, ", "), suite.Name, short(suite.Digest))
	}
	fmt.Fprintf(g.stderr, "baseline: %d samples from its signed eval attestation %s (key %s, run %s)\n", len(best.Samples), from.Referrer, from.Key, best.RunID)
	rep.Notes = append(rep.Notes, fmt.Sprintf("The baseline's outcomes are from its signed eval attestation %s (key %s), run %s on %s.",
		from.Referrer, from.KeyID, best.RunID, best.Started.Format(time.RFC3339)))
	return best.Samples, best.Engine, nil
}

func short(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

// appendFile appends what write writes to path.
func appendFile(path string, write func(io.Writer) error) error {
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := write(fh); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// evalRetry is the eval retry policy: up to n more attempts with jittered
// backoff, honouring Retry-After.
func evalRetry(n int) runner.Retry {
	return runner.Retry{Attempts: n + 1, Base: 250 * time.Millisecond, Max: 10 * time.Second}
}

// loadShipped reads the release's system prompt and safety file from dir.
func loadShipped(dir string, rel *pack.Release) (*evals.Shipped, *evals.ShippedRef, error) {
	sh := &evals.Shipped{}
	ref := &evals.ShippedRef{}
	for _, p := range rel.Prompts {
		if p.Name != "system" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p.Path)))
		if err != nil {
			return nil, nil, fmt.Errorf("the release's system prompt: %w", err)
		}
		sh.System = string(b)
		ref.SystemPrompt = evals.Digest(b)
	}
	if rel.Safety != nil {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel.Safety.Path)))
		if err != nil {
			return nil, nil, fmt.Errorf("the release's safety file: %w", err)
		}
		s, err := evals.ParseSafety(b)
		if err != nil {
			return nil, nil, fmt.Errorf("the release's safety file %s: %w", rel.Safety.Path, err)
		}
		sh.Safety = s
		ref.Safety = evals.Digest(b)
		ref.MaxTokens = s.Limits.MaxOutputTokens
		ref.Temperature = s.Limits.Temperature
		ref.Redact = s.PII.RedactOutput
	}
	return sh, ref, nil
}

// releaseSuite reads the eval suite the release itself carries under name
// (airlock.yaml's evals): from --dir, or from REF, pulling only its eval
// files.
func releaseSuite(ctx context.Context, g *globals, a []string, dir, name string) ([]byte, string, error) {
	var rel *pack.Release
	switch {
	case dir != "":
		b, err := os.ReadFile(filepath.Join(dir, pack.DefaultFile))
		if err != nil {
			return nil, "", fmt.Errorf("--suite release:%s: %w", name, err)
		}
		p, err := pack.Parse(b, filepath.Join(dir, pack.DefaultFile))
		if err != nil {
			return nil, "", err
		}
		rel = &p.Release
	case len(a) == 1:
		ref, err := parseRef(a[0])
		if err != nil {
			return nil, "", err
		}
		c, err := g.client()
		if err != nil {
			return nil, "", err
		}
		tmp, err := os.MkdirTemp("", "airlock-eval-suite-")
		if err != nil {
			return nil, "", err
		}
		defer os.RemoveAll(tmp)
		res, err := c.Pull(ctx, ref, tmp, client.PullOptions{Roles: []registry.Role{registry.RoleEval}})
		if err != nil {
			return nil, "", err
		}
		if res.Release.File == nil {
			return nil, "", fmt.Errorf("--suite release:%s: %s carries no release file (dev.airlock.release)", name, ref)
		}
		rel, dir = res.Release.File, tmp
	default:
		return nil, "", usagef("--suite release:%s reads the release's own suite: give REF or --dir", name)
	}
	var names []string
	for _, e := range rel.Evals {
		if e.Name == name {
			b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(e.Path)))
			if err != nil {
				return nil, "", fmt.Errorf("--suite release:%s: %w", name, err)
			}
			return b, name, nil
		}
		names = append(names, e.Name)
	}
	return nil, "", usagef("--suite release:%s: the release has no eval suite of that name (it has %s)", name, strings.Join(names, ", "))
}

func readSuite(s string) ([]byte, string, error) {
	if name, ok := strings.CutPrefix(s, "builtin:"); ok {
		b, err := suites.Get(name)
		if err != nil {
			return nil, "", usageError{err}
		}
		return b, name, nil
	}
	b, err := os.ReadFile(s)
	if err != nil {
		return nil, "", err
	}
	return b, strings.TrimSuffix(filepath.Base(s), filepath.Ext(s)), nil
}

func hasRubric(s *evals.Suite) bool {
	var walk func([]evals.Assertion) bool
	walk = func(as []evals.Assertion) bool {
		for i := range as {
			if as[i].Type == "rubric" || walk(as[i].Assert) {
				return true
			}
		}
		return false
	}
	for i := range s.Items {
		if walk(s.Items[i].Assert) {
			return true
		}
	}
	return false
}

func readPrices(path string) (map[string]evaljob.Price, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m map[string]evaljob.Price
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("--prices %s: %w (want MODEL: {input_per_mtok: N, output_per_mtok: N})", path, err)
	}
	for k, p := range m {
		if p.InputPerMTok < 0 || p.OutputPerMTok < 0 {
			return nil, fmt.Errorf("--prices %s: %s: negative price", path, k)
		}
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("--prices %s: no prices", path)
	}
	return m, nil
}

func importSamples(spec string) ([]evals.Sample, evals.EngineRef, []string, error) {
	format, file, ok := strings.Cut(spec, ":")
	if !ok || file == "" {
		return nil, evals.EngineRef{}, nil, usagef("import %q: want FORMAT:FILE, such as promptfoo:results.json or lm-eval:samples.jsonl", spec)
	}
	if !slices.Contains(evals.ImportFormats(), format) {
		return nil, evals.EngineRef{}, nil, usagef("import %q: unknown format %q (want %s)", spec, format, strings.Join(evals.ImportFormats(), " or "))
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, evals.EngineRef{}, nil, err
	}
	imp, err := evals.Import(format, b)
	if err != nil {
		return nil, evals.EngineRef{}, nil, fmt.Errorf("%s: %w", file, err)
	}
	return imp.Samples, evals.EngineRef{Kind: "import:" + imp.Format, Model: imp.Model}, imp.Notes, nil
}

func readBaselineReport(path string, suite evals.SuiteRef, ref *registry.Ref) ([]evals.Sample, evals.EngineRef, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, evals.EngineRef{}, err
	}
	var r evals.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, evals.EngineRef{}, fmt.Errorf("--baseline-report %s: %w", path, err)
	}
	if r.Schema != evals.ReportSchema {
		return nil, evals.EngineRef{}, fmt.Errorf("--baseline-report %s: schema %q is not an eval report (%s)", path, r.Schema, evals.ReportSchema)
	}
	if suite.Digest != "" && r.Suite.Digest != suite.Digest {
		return nil, evals.EngineRef{}, fmt.Errorf("--baseline-report %s is of suite %s (%s), not of this suite (%s): the items would not pair", path, r.Suite.Name, r.Suite.Digest, suite.Digest)
	}
	if ref != nil && ref.Digest != "" && (r.Release == nil || r.Release.Digest != ref.Digest.String()) {
		return nil, evals.EngineRef{}, fmt.Errorf("--baseline-report %s is not about %s", path, ref)
	}
	if len(r.Samples) == 0 {
		return nil, evals.EngineRef{}, fmt.Errorf("--baseline-report %s has no samples", path)
	}
	return r.Samples, r.Engine, nil
}

func countItems(ss []evals.Sample) int {
	seen := map[string]bool{}
	for _, s := range ss {
		seen[s.ID] = true
	}
	return len(seen)
}

func cmpNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// printEvalSummary prints the headline numbers on stderr.
func printEvalSummary(w io.Writer, r *evals.Report) {
	m := &r.Metrics
	fmt.Fprintf(w, "\nsuite %s: %d items, %d samples\n", r.Suite.Name, m.Items, m.Samples)
	fmt.Fprintf(w, "  pass rate          %s\n", m.PassRate)
	for _, k := range m.PassAtK {
		fmt.Fprintf(w, "  pass@%-13d %.1f%% (%d items)\n", k.K, 100*k.Value, k.Items)
	}
	if s := m.SafetyViolations; s != nil {
		fmt.Fprintf(w, "  safety violations  %.1f%% of %d items, upper bound %.1f%%\n", 100*s.Value, s.Items, 100*s.Upper)
	}
	if s := m.BenignRefusals; s != nil {
		fmt.Fprintf(w, "  benign refusals    %.1f%% of %d items, upper bound %.1f%%\n", 100*s.Value, s.Items, 100*s.Upper)
	}
	if l := m.Latency; l != nil {
		fmt.Fprintf(w, "  latency p50/p95    %.0f / %.0f ms\n", l.P50, l.P95)
	}
	if c := m.Cost; c != nil && c.CostPerSuccess != nil {
		fmt.Fprintf(w, "  cost per success   $%.6f\n", *c.CostPerSuccess)
	}
	if len(m.Errors) > 0 {
		fmt.Fprintf(w, "  no answer          %v (counted as failures)\n", m.Errors)
	}
	if bl := r.Baseline; bl != nil {
		p := &bl.Paired
		fmt.Fprintf(w, "against %s: %s\n", bl.Release.Ref, p.Verdict)
		fmt.Fprintf(w, "  pass rate %.1f%% -> %.1f%%, %+.1f points [%+.1f, %+.1f], McNemar p = %.3g, %d wins / %d losses / %d ties, %d items (need %d)\n",
			100*bl.Metrics.PassRate.Value, 100*m.PassRate.Value, 100*p.Delta, 100*p.CI.Lo, 100*p.CI.Hi, p.PValue, p.Wins, p.Losses,
			p.N-p.Wins-p.Losses, p.N, p.MinN)
		if pw := bl.Pairwise; pw != nil {
			fmt.Fprintf(w, "  judged side by side: win rate %.1f%%, %d wins / %d losses / %d ties, sign test p = %.3g\n",
				100*pw.WinRate.Rate, pw.WinRate.Wins, pw.WinRate.Losses, pw.WinRate.Ties, pw.WinRate.PValue)
		}
		if len(p.Regressed) > 0 {
			fmt.Fprintf(w, "  regressed: %s\n", strings.Join(p.Regressed, ", "))
		}
		if len(p.Fixed) > 0 {
			fmt.Fprintf(w, "  fixed:     %s\n", strings.Join(p.Fixed, ", "))
		}
	}
}
