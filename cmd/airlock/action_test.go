package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGateAction runs the GitHub Action's script (actions/gate/gate.sh)
// as a runner would, with the environment files a runner provides, and
// airlock gate end to end behind it: a real registry whose prod tag is
// protected by verdicts, a signed release, the reference model server (a
// SIMULATOR playing a good and a regressed version) for the eval and
// bench jobs the gate runs.
func TestGateAction(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a registry and model servers")
	}
	bin := buildAirlock(t)
	work := t.TempDir()
	env := append(os.Environ(), "AIRLOCK_CACHE_DIR="+filepath.Join(work, "cache"), "AIRLOCK_PASSWORD=test")
	run := func(args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		var xe *exec.ExitError
		if errors.As(err, &xe) {
			return xe.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	key := filepath.Join(work, "release")
	if code, out := run("key", "generate", "--output-key-prefix", key); code != 0 {
		t.Fatal(out)
	}
	regConfig := filepath.Join(work, "registry.yaml")
	must(t, os.WriteFile(regConfig, []byte("protectedTags: [{repos: \"*/*\", tags: prod}]\nverdicts: {trust: ["+key+".pub]}\n"), 0o644))
	host := serveRegistry(t, bin, filepath.Join(work, "registry"), regConfig)
	repo := host + "/acme/support-bot"

	example := filepath.Join("..", "..", "examples", "support-bot")
	code, out := run("push", example, repo)
	if code != 0 {
		t.Fatal(out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	good := lines[len(lines)-1]
	_, goodDigest, _ := strings.Cut(good, "@")
	if code, out := run("sign", good, "--key", key+".key"); code != 0 {
		t.Fatal(out)
	}
	approvals := filepath.Join(work, "approvals.yaml")
	must(t, os.WriteFile(approvals, []byte(fmt.Sprintf("- {by: alice@example.com, for: [safety, tokenizer], expires: %q, subject: %q}\n",
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339), goodDigest)), 0o644))

	serve := func(version string) string {
		return fmt.Sprintf("'%s' demo-model serve --version %s --addr {{.Host}}:{{.Port}}", bin, version)
	}
	config, err := filepath.Abs(filepath.Join("..", "..", "examples", "gate", "gate.yaml"))
	must(t, err)
	script, err := filepath.Abs(filepath.Join("..", "..", "actions", "gate", "gate.sh"))
	must(t, err)
	action := func(t *testing.T, inputs map[string]string) (code int, stdout string, outputs map[string]string, summary string) {
		t.Helper()
		dir := t.TempDir()
		outFile, sumFile := filepath.Join(dir, "output"), filepath.Join(dir, "summary")
		must(t, os.WriteFile(sumFile, []byte("written by an earlier step\n"), 0o644))
		cmd := exec.Command("bash", script)
		cmd.Env = append(env, "AIRLOCK_BIN="+bin, "GITHUB_OUTPUT="+outFile, "GITHUB_STEP_SUMMARY="+sumFile, "INPUT_CONFIG="+config)
		for k, v := range inputs {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		var xe *exec.ExitError
		if errors.As(err, &xe) {
			code = xe.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		outputs = map[string]string{}
		b, _ := os.ReadFile(outFile)
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				outputs[k] = v
			}
		}
		s, _ := os.ReadFile(sumFile)
		if !strings.HasPrefix(string(s), "written by an earlier step\n") {
			t.Errorf("the step summary lost what an earlier step wrote:\n%s", s)
		}
		t.Logf("exit %d\nstdout:\n%s\nstderr (last part):\n%s", code, so.String(), tail(se.String(), 1500))
		return code, so.String(), outputs, string(s)
	}

	t.Run("a good release passes and is promoted", func(t *testing.T) {
		code, stdout, outputs, summary := action(t, map[string]string{
			"INPUT_REF": good, "INPUT_KEY": key + ".key", "INPUT_PROMOTE": "true",
			"INPUT_ARGS": fmt.Sprintf("--cmd %q --approvals %s", serve("good"), approvals),
		})
		if code != 0 || outputs["decision"] != "pass" || outputs["digest"] != goodDigest || !strings.Contains(outputs["verdict-ref"], "@sha256:") {
			t.Fatalf("exit %d, outputs %v", code, outputs)
		}
		if !strings.Contains(summary, "PASSED for prod") || !strings.Contains(stdout, "::notice title=airlock gate::") {
			t.Errorf("summary or annotations miss the pass:\n%s\n%s", summary, stdout)
		}
		if code, out := run("verify", repo+":prod", "--key", key+".pub", "--attestations", "verdict"); code != 0 {
			t.Errorf("prod should carry the verdict: %s", out)
		}
	})

	// The candidate: the same release as 1.5.0, served by the regressed
	// simulator.
	cand := filepath.Join(work, "candidate")
	must(t, os.CopyFS(cand, os.DirFS(example)))
	rel, err := os.ReadFile(filepath.Join(cand, "airlock.yaml"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(cand, "airlock.yaml"), []byte(strings.Replace(string(rel), "version: 1.4.0", "version: 1.5.0", 1)), 0o644))
	if code, out := run("push", cand, repo); code != 0 {
		t.Fatal(out)
	}
	if code, out := run("sign", repo+":1.5.0", "--key", key+".key"); code != 0 {
		t.Fatal(out)
	}

	t.Run("dry run reports the deny and does not fail", func(t *testing.T) {
		code, _, outputs, summary := action(t, map[string]string{
			"INPUT_REF": repo + ":1.5.0", "INPUT_DRY_RUN": "true", "INPUT_ARGS": "--trust " + key + ".pub --no-run",
		})
		if code != 0 || outputs["decision"] != "fail" || outputs["verdict-ref"] != "" {
			t.Fatalf("exit %d, outputs %v", code, outputs)
		}
		if !strings.Contains(summary, "dry run") || !strings.Contains(summary, "no usable eval") {
			t.Errorf("summary:\n%s", summary)
		}
	})

	t.Run("a regressed release is denied with reasons and refused prod", func(t *testing.T) {
		code, stdout, outputs, summary := action(t, map[string]string{
			"INPUT_REF": repo + ":1.5.0", "INPUT_KEY": key + ".key", "INPUT_PROMOTE": "true",
			"INPUT_ARGS": fmt.Sprintf("--cmd %q", serve("regressed")),
		})
		if code != 1 || outputs["decision"] != "fail" || outputs["verdict-ref"] == "" {
			t.Fatalf("exit %d, outputs %v", code, outputs)
		}
		for _, want := range []string{"regressed items: capital-au", "upper bound is below the 70% target"} {
			if !strings.Contains(summary, want) {
				t.Errorf("summary misses %q:\n%s", want, summary)
			}
		}
		if !strings.Contains(stdout, "::error title=airlock.gate/non_inferiority::") {
			t.Errorf("no annotation for the non-inferiority deny:\n%s", stdout)
		}
		code, out := run("tag", repo+":1.5.0", "prod")
		if code != 1 || !strings.Contains(out, "verdict") || !strings.Contains(out, "is fail") {
			t.Errorf("the registry must refuse prod for a denied release: exit %d: %s", code, out)
		}
	})

	t.Run("stale evidence is not reused", func(t *testing.T) {
		// The good release's signed evidence is seconds old; a config that
		// allows a nanosecond makes it stale, and --no-run runs nothing new.
		strict := filepath.Join(work, "strict.yaml")
		b, err := os.ReadFile(config)
		must(t, err)
		must(t, os.WriteFile(strict, []byte(strings.Replace(string(b), "max_age: 168h", "max_age: 1ns", 1)), 0o644))
		code, _, outputs, summary := action(t, map[string]string{
			"INPUT_REF": good, "INPUT_CONFIG": strict, "INPUT_ARGS": "--trust " + key + ".pub --no-run --approvals " + approvals,
		})
		if code != 1 || outputs["decision"] != "fail" || !strings.Contains(summary, "hours old") {
			t.Fatalf("exit %d, outputs %v\n%s", code, outputs, summary)
		}
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// serveRegistry runs airlock registry serve on a free loopback port until
// the test ends.
func serveRegistry(t *testing.T, bin, root, config string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	host := ln.Addr().String()
	must(t, ln.Close())
	cmd := exec.Command(bin, "registry", "serve", "--addr", host, "--root", root, "--config", config)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	must(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		if resp, err := http.Get("http://" + host + "/v2/"); err == nil {
			resp.Body.Close()
			return host
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry did not start:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
