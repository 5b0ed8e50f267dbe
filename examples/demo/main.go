// Command demo is what `make demo` runs: it starts Airlock's embedded
// registry on loopback, packs the example release, pushes it, inspects it,
// pulls one part back, and prints every command with its output, so a
// newcomer sees Airlock work end to end on embedded defaults.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("airlock", "bin/airlock", "airlock binary to drive")
	example := flag.String("example", "examples/support-bot", "release directory to pack")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, *bin, *example)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin, example string) error {
	work, err := os.MkdirTemp("", "airlock-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// A demo key password, so the key commands need no terminal.
	env := append(os.Environ(), "AIRLOCK_CACHE_DIR="+filepath.Join(work, "cache"), "AIRLOCK_PASSWORD=demo")
	key := filepath.Join(work, "release")
	fmt.Printf("# Make a cosign-compatible key pair (the password comes from AIRLOCK_PASSWORD).\n$ airlock key generate --output-key-prefix %s\n", key)
	keygen := exec.CommandContext(ctx, bin, "key", "generate", "--output-key-prefix", key)
	keygen.Env, keygen.Stdout, keygen.Stderr = env, os.Stdout, os.Stdout
	if err := keygen.Run(); err != nil {
		return fmt.Errorf("airlock key generate: %w", err)
	}
	// The registry protects prod: it may point only at a digest with a
	// signed pass verdict for prod, by this key.
	regConfig := filepath.Join(work, "registry.yaml")
	if err := os.WriteFile(regConfig, []byte("protectedTags: [{repos: \"*/*\", tags: prod}]\nverdicts: {trust: ["+key+".pub]}\n"), 0o644); err != nil {
		return err
	}
	host, stopRegistry, err := startRegistry(ctx, bin, filepath.Join(work, "registry"), regConfig)
	if err != nil {
		return err
	}
	defer stopRegistry()
	fmt.Printf("\n# airlock registry serve is listening on %s (storage in a temp dir); prod is protected by verdicts.\n\n", host)

	// stepExit runs a step that must exit with want (a denial is the point
	// of some steps).
	stepExit := func(want int, comment string, args ...string) (string, error) {
		shown := make([]string, len(args))
		for i, a := range args {
			shown[i] = a
			if strings.ContainsAny(a, " '") {
				shown[i] = `"` + a + `"`
			}
		}
		fmt.Printf("# %s\n$ airlock %s\n", comment, strings.Join(shown, " "))
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		var out strings.Builder
		cmd.Stdout = &out
		cmd.Stderr = os.Stdout
		err := cmd.Run()
		fmt.Print(out.String())
		code := 0
		var xe *exec.ExitError
		if errors.As(err, &xe) {
			code = xe.ExitCode()
		} else if err != nil {
			return "", fmt.Errorf("airlock %s: %w", args[0], err)
		}
		if code != want {
			return "", fmt.Errorf("airlock %s: exit %d, want %d", args[0], code, want)
		}
		if want != 0 {
			fmt.Printf("(exit %d, as it should be)\n", code)
		}
		fmt.Println()
		return strings.TrimSpace(out.String()), nil
	}
	step := func(comment string, args ...string) (string, error) { return stepExit(0, comment, args...) }
	repo := host + "/demo/support-bot"
	digest, err := step("Pack the example release: one raw layer per file, digest printed last.", "pack", example)
	if err != nil {
		return err
	}
	pushed, err := step("Pack and push in one step; the tag defaults to the release version.", "push", example, repo)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(pushed, digest) {
		return fmt.Errorf("pushed %s, but pack computed %s", pushed, digest)
	}
	if _, err := step("Pushing again sends nothing: the registry has every blob.", "push", example, repo); err != nil {
		return err
	}
	if _, err := step("Sign the release: the tag is resolved and its digest signed, in cosign v2's and v3's layouts.", "sign", repo+":1.4.0", "--key", key+".key"); err != nil {
		return err
	}
	if _, err := step("Verify it; cosign verify --key accepts the same signatures.", "verify", repo+":1.4.0", "--key", key+".pub"); err != nil {
		return err
	}
	bom := filepath.Join(work, "support-bot.cdx.json")
	if _, err := step("Write its CycloneDX ML-BOM and attach it, signed, as an attestation.", "sbom", repo+":1.4.0", "-o", bom, "--attach", "--key", key+".key"); err != nil {
		return err
	}
	if _, err := step("Check the attestation by its predicate type.", "verify", repo+":1.4.0", "--key", key+".pub", "--attestations", "cyclonedx"); err != nil {
		return err
	}
	// The benchmark: the process engine pulls the release, starts a server
	// on its files and drives it. The server is airlock's reference model
	// server, a SIMULATOR playing a good and a regressed version.
	abs, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	serve := func(version string) string {
		return "'" + abs + "' demo-model serve --version " + version + " --addr {{.Host}}:{{.Port}}"
	}
	load := []string{"--requests", "200", "--concurrency", "16", "--warmup", "16", "--slo", "ttft:100ms,tpot:20ms", "--summary-only"}
	if _, err := step("Benchmark the release: pull it, start the serving command on its files (here the SIMULATED model server, good version), "+
		"run 200 requests 16 at a time, and attach the report as a signed bench attestation.",
		append([]string{"bench", repo + ":1.4.0", "--engine", "process", "--cmd", serve("good"), "-o", filepath.Join(work, "bench-good.json"), "--attach", "--key", key + ".key"}, load...)...); err != nil {
		return err
	}
	if _, err := step("The same load on the simulator's regressed version: slower first token and decoding, 2% errors.",
		append([]string{"bench", "--engine", "process", "--dir", work, "--cmd", serve("regressed"), "-o", filepath.Join(work, "bench-regressed.json")}, load...)...); err != nil {
		return err
	}
	if _, err := step("Check the bench attestation.", "verify", repo+":1.4.0", "--key", key+".pub", "--attestations", "bench"); err != nil {
		return err
	}

	// Evals: the release as shipped (its system prompt and safety
	// settings), the demo suite, the paired comparison.
	suite, err := filepath.Abs(filepath.Join(example, "..", "demo-model", "suite.yaml"))
	if err != nil {
		return err
	}
	gateDir, err := filepath.Abs(filepath.Join(example, "..", "gate"))
	if err != nil {
		return err
	}
	prices := filepath.Join(gateDir, "prices.yaml")
	if _, err := step("Eval the release as shipped on the demo suite (the SIMULATED good version), require a pass rate of 70% "+
		"shown by the interval, price its tokens, and attach the report as a signed eval attestation.",
		"eval", repo+":1.4.0", "--suite", suite, "--cmd", serve("good"), "--min-pass-rate", "0.7", "--prices", prices,
		"-o", filepath.Join(work, "eval-good.json"), "--attach", "--key", key+".key"); err != nil {
		return err
	}
	if _, err := step("Check the eval attestation.", "verify", repo+":1.4.0", "--key", key+".pub", "--attestations", "eval"); err != nil {
		return err
	}
	candidate := filepath.Join(work, "support-bot-1.5.0")
	if err := os.CopyFS(candidate, os.DirFS(example)); err != nil {
		return err
	}
	relFile := filepath.Join(candidate, "airlock.yaml")
	rel, err := os.ReadFile(relFile)
	if err != nil {
		return err
	}
	if err := os.WriteFile(relFile, []byte(strings.Replace(string(rel), "version: 1.4.0", "version: 1.5.0", 1)), 0o644); err != nil {
		return err
	}
	if _, err := step("A candidate, 1.5.0, to replace 1.4.0.", "push", candidate, repo); err != nil {
		return err
	}
	if _, err := step("Sign the candidate.", "sign", repo+":1.5.0", "--key", key+".key"); err != nil {
		return err
	}
	if _, err := stepExit(1, "Eval the candidate (served by the SIMULATED regressed version) against 1.4.0 (the good version) on the same items: "+
		"a paired loss well beyond the 5-point margin, the exact McNemar test, and the items that flipped. Exit 1.",
		"eval", repo+":1.5.0", "--suite", suite, "--cmd", serve("regressed"), "--baseline", repo+":1.4.0", "--baseline-cmd", serve("good"),
		"--margin", "0.05", "-o", filepath.Join(work, "eval-candidate.json"), "--markdown", filepath.Join(work, "eval-candidate.md")); err != nil {
		return err
	}
	// The gate: policy on signed evidence, a signed verdict, the prod tag.
	gateConfig := filepath.Join(gateDir, "gate.yaml")
	_, d14, _ := strings.Cut(pushed, "@")
	approvals := filepath.Join(work, "approvals.yaml")
	if err := os.WriteFile(approvals, []byte(fmt.Sprintf("# A first release brings its safety settings and tokenizer: an owner approves them, for this digest only.\n"+
		"- {by: alice@example.com, for: [safety, tokenizer], reason: first release, expires: %q, subject: %q}\n",
		time.Now().Add(72*time.Hour).UTC().Format(time.RFC3339), d14)), 0o644); err != nil {
		return err
	}
	if _, err := step("Gate 1.4.0 for prod (examples/gate/gate.yaml): verify its signature, reuse its signed eval and bench attestations, "+
		"decide with the built-in policies, attach the signed verdict, and move prod to it (the registry checks the verdict).",
		"gate", repo+":1.4.0", "--config", gateConfig, "--key", key+".key", "--cmd", serve("good"), "--approvals", approvals,
		"--promote", "--markdown", filepath.Join(work, "gate-1.4.0.md")); err != nil {
		return err
	}
	if _, err := stepExit(1, "Gate the 1.5.0 candidate (served by the SIMULATED regressed version) for prod against the release prod points at: "+
		"the gate runs the missing eval (paired with 1.4.0's signed results) and benchmark, and the policies deny it with reasons. Exit 1.",
		"gate", repo+":1.5.0", "--config", gateConfig, "--key", key+".key", "--cmd", serve("regressed"), "--promote",
		"--markdown", filepath.Join(work, "gate-1.5.0.md")); err != nil {
		return err
	}
	if _, err := stepExit(1, "Try to move prod to 1.5.0 by hand: the registry refuses, since its signed verdict for prod is a fail. Exit 1.",
		"tag", repo+":1.5.0", "prod"); err != nil {
		return err
	}
	if _, err := step("Check the verdict attestation of 1.4.0.", "verify", repo+":prod", "--key", key+".pub", "--attestations", "verdict"); err != nil {
		return err
	}
	// Promotion by canary analysis: the router splits live traffic, a real
	// Prometheus scrapes it, and airlock promote judges and moves prod.
	newRelease := func(version string) (string, error) {
		dir := filepath.Join(work, "support-bot-"+version)
		if err := os.CopyFS(dir, os.DirFS(example)); err != nil {
			return "", err
		}
		f := filepath.Join(dir, "airlock.yaml")
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(f, []byte(strings.Replace(string(b), "version: 1.4.0", "version: "+version, 1)), 0o644); err != nil {
			return "", err
		}
		out, err := step("A candidate, "+version+".", "push", dir, repo)
		if err != nil {
			return "", err
		}
		_, d, _ := strings.Cut(out[strings.LastIndex(out, "\n")+1:], "@")
		if _, err := step("Sign it.", "sign", repo+":"+version, "--key", key+".key"); err != nil {
			return "", err
		}
		_, err = step("Gate "+version+" for prod with the patch-release gate (examples/gate/gate-patch.yaml: the absolute SLOs, no paired comparison; "+
			"the canary compares it with prod live), served by the SIMULATED good version: it passes, and its signed verdict lets it be promoted.",
			"gate", repo+":"+version, "--config", filepath.Join(gateDir, "gate-patch.yaml"), "--key", key+".key", "--cmd", serve("good"), "--markdown", filepath.Join(work, "gate-"+version+".md"))
		return d, err
	}
	d151, err := newRelease("1.5.1")
	if err != nil {
		return err
	}
	live, err := startLive(ctx, abs, work, key+".pub", d14, d151)
	if err != nil {
		return err
	}
	defer live.stop()
	if err := live.setCanary(ctx, live.canaryModel, d151); err != nil {
		return err
	}
	fmt.Printf("# Live: two SIMULATED good model servers behind airlock router serve (stable: 1.4.0, canary: 1.5.1), %d requests/s of streamed\n"+
		"# chat completions through it, and Prometheus scraping the router every second. The plan (%s):\n%s\n",
		liveRate, live.plan, live.planText)
	if _, err := step("Promote 1.5.1 by canary analysis: 10% then 50% of live traffic, a look every 3s at TTFT and errors of both "+
		"releases from Prometheus, judged by sequential tests; every step passes, prod moves to 1.5.1, and a signed promotion record is attached.",
		"promote", repo+":1.5.1", "--config", live.plan, "--key", key+".key", "--state", filepath.Join(work, "promote-1.5.1.json")); err != nil {
		return err
	}
	d152, err := newRelease("1.5.2")
	if err != nil {
		return err
	}
	if err := live.setCanary(ctx, live.regressedModel, d152); err != nil {
		return err
	}
	fmt.Printf("# 1.5.2 passed the gate offline, but live it is served by the SIMULATED regressed version (slower first token, 2%% errors).\n\n")
	if _, err := stepExit(1, "Promote 1.5.2: the first look with enough samples shows its TTFT far worse than 1.5.1's; it is rolled back at the first step "+
		"with the reason, the router's kill-switch sends all traffic to 1.5.1, prod stays on 1.5.1. Exit 1.",
		"promote", repo+":1.5.2", "--config", live.plan, "--key", key+".key", "--state", filepath.Join(work, "promote-1.5.2.json")); err != nil {
		return err
	}
	if _, err := step("The promotion record of 1.5.2, signed and attached.", "verify", repo+":1.5.2", "--key", key+".pub", "--attestations", "promotion"); err != nil {
		return err
	}
	state, err := live.state(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("# The router now: %s\n\n", state)
	if _, err := step("Inspect the release: parts, roles, sizes, annotations, and signatures and attestations as referrers.", "inspect", repo+":1.4.0"); err != nil {
		return err
	}
	out := filepath.Join(work, "prompts-only")
	if _, err := step("Pull only the prompt and safety settings, verified by digest.", "pull", pushed, "--role", "prompt,safety", "-o", out); err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(out, "prompts", "system.md"))
	if err != nil {
		return err
	}
	fmt.Printf("# The pulled system prompt starts with: %q\n\n", strings.SplitN(string(data), "\n", 2)[0])
	fmt.Printf("Done: packed %s, pushed it to %s, signed it, attached its ML-BOM, a benchmark and an eval, verified them, "+
		"showed a regressed candidate losing to it on the same items, gated both: 1.4.0 passed and held prod, 1.5.0 was denied and the registry refused to tag it prod; promoted 1.5.1 by canary analysis through the router "+
		"against live Prometheus metrics, and rolled back 1.5.2, which regressed live; pulled one part back.\n", digest, pushed)
	return nil
}

// startRegistry runs `airlock registry serve` on a free loopback port and
// waits until it answers.
func startRegistry(ctx context.Context, bin, root, config string) (string, func(), error) {
	host, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "registry", "serve", "--addr", host, "--root", root, "--config", config)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	if err := waitOK("http://"+host+"/v2/", 10*time.Second); err != nil {
		stop()
		return "", nil, fmt.Errorf("airlock registry serve did not answer on %s: %w\n%s", host, err, logs.String())
	}
	return host, stop, nil
}
