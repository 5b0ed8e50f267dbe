//go:build unix

package process

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/enginetest"
	"github.com/airlock-dev/airlock/runner/sim"
)

// The test binary is also the model server the tests start: with
// envServe set it serves runner/sim with the config in that file on
// -host and -port until SIGTERM, behaving as envMode says.
const (
	envServe = "AIRLOCK_PROCESS_TEST_SERVE"
	envMode  = "AIRLOCK_PROCESS_TEST_MODE"
	// envTest is the pid of the test binary that started the server: a
	// server outliving it (a test that timed out and never ran Stop)
	// exits by itself.
	envTest = "AIRLOCK_PROCESS_TEST_PID"
)

// Server modes (envMode).
const (
	modeExit        = "exit"         // print an error and exit 3 at once
	modeIgnoreTerm  = "ignore-term"  // serve, ignoring SIGTERM
	modeWorker      = "worker"       // serve, ignoring SIGTERM, with a worker in the group that ignores it too
	modeWorkerTerm  = "worker-term"  // serve, with a worker in the group that ignores SIGTERM
	modeSleep       = "sleep"        // the worker: sleep, ignoring SIGTERM
	modeNeverListen = "never-listen" // never open the port
)

func TestMain(m *testing.M) {
	if os.Getenv(envServe) != "" || os.Getenv(envMode) != "" {
		os.Exit(serve())
	}
	os.Exit(m.Run())
}

// serve is the test binary as a model server.
func serve() int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	port := fs.Int("port", 0, "port to listen on")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	mode := os.Getenv(envMode)
	if pid, err := strconv.Atoi(os.Getenv(envTest)); err == nil {
		go func() {
			for syscall.Kill(pid, 0) == nil {
				time.Sleep(time.Second)
			}
			os.Exit(1)
		}()
	}
	forever := func() {
		for {
			time.Sleep(time.Hour)
		}
	}
	term := make(chan os.Signal, 1)
	switch mode {
	case modeExit:
		fmt.Println("loading weights")
		fmt.Fprintln(os.Stderr, "error: CUDA out of memory")
		return 3
	case modeSleep:
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		forever()
	case modeIgnoreTerm:
		signal.Ignore(syscall.SIGTERM)
	case modeWorker, modeWorkerTerm:
		if mode == modeWorker {
			signal.Ignore(syscall.SIGTERM)
		} else {
			signal.Notify(term, syscall.SIGTERM)
		}
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		w := exec.Command(exe)
		w.Env = append(os.Environ(), envMode+"="+modeSleep)
		r, err := w.StdoutPipe()
		if err == nil {
			err = w.Start()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// The server is ready only once its worker ignores SIGTERM.
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			return 1
		}
		fmt.Printf("worker %d: %s", w.Process.Pid, line)
	default:
		signal.Notify(term, syscall.SIGTERM)
	}
	cfg, err := readConfig(os.Getenv(envServe))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if mode == modeNeverListen {
		fmt.Println("loading forever")
		<-term
		return 0
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{Handler: sim.New(cfg)}
	go srv.Serve(ln)
	fmt.Printf("serving %s on %s\n", cfg.Model, ln.Addr())
	if mode == modeIgnoreTerm || mode == modeWorker {
		forever()
	}
	<-term
	srv.Close()
	fmt.Println("stopped on SIGTERM")
	return 0
}

// testServer is how a test starts the test binary as a server.
type testServer struct {
	cfg  sim.Config
	mode string
}

// engine returns an engine that serves s, stopped when the test ends.
func (s testServer) engine(t *testing.T, opts Options) *Engine {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Command == "" {
		opts.Command = quote(exe) + " -host {{.Host}} -port {{.Port}}"
	}
	// A race-enabled binary sleeps a second at exit unless told not to.
	opts.Env = append(opts.Env, envServe+"="+writeConfig(t, s.cfg), envMode+"="+s.mode,
		envTest+"="+strconv.Itoa(os.Getpid()), "GORACE=atexit_sleep_ms=0")
	// No Model: the engine takes the one readiness found (Describe and
	// every request name it).
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 5 * time.Second
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = time.Minute
	}
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return e
}

// syncBuffer collects the server's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// checkGone fails the test when a process of group pgid still runs.
func checkGone(t *testing.T, pgid int) {
	t.Helper()
	if pgid <= 0 {
		t.Fatalf("no process group (pgid %d)", pgid)
	}
	if live := liveInGroup(pgid); len(live) > 0 {
		t.Errorf("process group %d still runs: %s", pgid, strings.Join(live, "; "))
	}
}

func chat(id, content string, maxTokens int) *runner.Request {
	return &runner.Request{ID: id, Kind: runner.Chat, MaxTokens: maxTokens,
		Messages: []runner.Message{{Role: "user", Content: content}}}
}

func content(tl *runner.Timeline) (n int) {
	for _, ev := range tl.Events {
		if ev.Kind == runner.EventContent {
			n++
		}
	}
	return n
}

func TestServe(t *testing.T) {
	before := runtime.NumGoroutine()
	var out syncBuffer
	s := testServer{cfg: sim.Config{Model: "sim-1", Answers: []sim.Answer{{Match: "capital", Text: "Paris is the capital"}}}}
	e := s.engine(t, Options{Stdout: &out, KeepOutput: true})
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	pgid := e.PID()

	info := e.Describe()
	port := strings.TrimPrefix(info.Endpoint, "http://127.0.0.1:")
	if info.Kind != "process" || info.Model != "sim-1" || port == info.Endpoint ||
		!strings.HasSuffix(info.Command, " -host 127.0.0.1 -port "+port) {
		t.Errorf("Describe() = %+v", info)
	}

	tl := runner.NewTimeline("q1", time.Now())
	if err := e.Do(t.Context(), chat("q1", "the capital of France?", 16), tl); err != nil {
		t.Fatal(err)
	}
	if tl.Output != "Paris is the capital" || tl.Usage == nil || tl.Usage.CompletionTokens != 4 || content(tl) != 4 {
		t.Errorf("output %q, usage %+v, %d content events; want the scripted answer in 4 tokens", tl.Output, tl.Usage, content(tl))
	}
	if !strings.Contains(out.String(), "serving sim-1 on 127.0.0.1:"+port) {
		t.Errorf("the server's stdout did not reach Options.Stdout: %q", out.String())
	}

	if err := e.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill(-%d, 0) after Stop: %v, want ESRCH", pgid, err)
	}
	if !strings.Contains(out.String(), "stopped on SIGTERM") {
		t.Errorf("the server did not stop on SIGTERM: %q", out.String())
	}
	var re *runner.Error
	if err := e.Do(t.Context(), chat("q2", "again", 4), runner.NewTimeline("q2", time.Now())); !errors.As(err, &re) || re.Class != runner.ClassEngineExit {
		t.Errorf("Do after Stop: %v, want engine_exit", err)
	}
	if err := e.Stop(t.Context()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	enginetest.NoGoroutinesLeft(t, before, 0)
}

// A shell command line: pipes, variables and exec work, and Stop still
// reaches the server behind sh.
func TestShell(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	s := testServer{cfg: sim.Config{Model: "sim-sh"}}
	e := s.engine(t, Options{Shell: true, Stderr: &out, Env: []string{"AIRLOCK_TEST_GREETING=hello"},
		Command: `echo "$AIRLOCK_TEST_GREETING from sh" >&2; exec ` + quote(exe) + ` -port {{.Port}} 2>&1`})
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	pgid := e.PID()
	if err := e.Do(t.Context(), chat("q", "hi", 3), runner.NewTimeline("q", time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkGone(t, pgid)
	if !strings.Contains(out.String(), "hello from sh") {
		t.Errorf("stderr %q lacks the shell's echo", out.String())
	}
}

func TestNotReady(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    testServer
		saw  string
	}{
		{name: "still loading", s: testServer{cfg: sim.Config{Model: "slow", StartupDelay: time.Hour}}, saw: "503"},
		{name: "port never opened", s: testServer{cfg: sim.Config{Model: "m"}, mode: modeNeverListen}, saw: "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.s.engine(t, Options{ReadyTimeout: time.Second})
			began := time.Now()
			err := e.Start(t.Context())
			var re *runner.Error
			if !errors.As(err, &re) || re.Class != runner.ClassTimeout {
				t.Fatalf("Start: %v, want a timeout", err)
			}
			for _, want := range []string{"server not ready after 1s", tc.saw, "last output:"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if d := time.Since(began); d < time.Second || d > 30*time.Second {
				t.Errorf("Start returned after %s with a ready timeout of 1s", d)
			}
			// Start killed the server without waiting for Stop.
			checkGone(t, e.PID())
		})
	}
}

func TestExitBeforeReady(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cmd, mode string
		want            []string
		is              error
	}{
		{name: "exits with an error", cmd: quote(exe) + " -port {{.Port}}", mode: modeExit,
			want: []string{"server exited before it was ready: exit status 3", "loading weights", "error: CUDA out of memory"}},
		{name: "false", cmd: "false --port {{.Port}}", want: []string{"exit status 1; no output"}},
		{name: "no such program", cmd: "airlock-no-such-server --port {{.Port}}",
			want: []string{"starting the server airlock-no-such-server --port", "executable file not found"}, is: exec.ErrNotFound},
		{name: "no such path", cmd: "/nonexistent/serve --port {{.Port}}",
			want: []string{"/nonexistent/serve", "no such file or directory"}, is: os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := testServer{cfg: sim.Config{Model: "m"}, mode: tc.mode}.engine(t, Options{Command: tc.cmd})
			err := e.Start(t.Context())
			var re *runner.Error
			if !errors.As(err, &re) || re.Class != runner.ClassEngineExit {
				t.Fatalf("Start: %v, want engine_exit", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if pgid := e.PID(); pgid != 0 {
				checkGone(t, pgid)
			}
		})
	}
}

// The server dies in the middle of a run: the request in flight and every
// later one fail with engine_exit, and the run ends.
func TestKilledMidRun(t *testing.T) {
	long := strings.TrimSpace(strings.Repeat("word ", 200))
	s := testServer{cfg: sim.Config{Model: "sim-k", PerToken: sim.Dist{Kind: "fixed", Mean: 20 * time.Millisecond},
		Answers: []sim.Answer{{Match: "short", Text: "ok"}, {Match: "long", Text: long}}}}
	var stderr syncBuffer
	e := s.engine(t, Options{Stderr: &stderr})
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	reqs := []runner.Request{*chat("short", "short", 4), *chat("long-1", "long", 300), *chat("long-2", "long", 300), *chat("long-3", "long", 300)}
	var once sync.Once
	res, err := runner.Run(t.Context(), e, reqs, runner.Options{
		Load: runner.Load{Concurrency: 2},
		// The short request ends first; the first long one is streaming.
		Progress: func(done, total int) {
			once.Do(func() {
				if err := syscall.Kill(e.PID(), syscall.SIGKILL); err != nil {
					t.Errorf("killing the server: %v", err)
				}
			})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Timelines) != 4 || res.Interrupted {
		t.Fatalf("%d timelines, interrupted %v", len(res.Timelines), res.Interrupted)
	}
	for _, tl := range res.Timelines {
		switch {
		case tl.ID == "short":
			if tl.Error != nil {
				t.Errorf("%s: %v", tl.ID, tl.Error)
			}
		case tl.Error == nil || tl.Error.Class != runner.ClassEngineExit:
			t.Errorf("%s: error %v, want engine_exit", tl.ID, tl.Error)
		case !strings.Contains(tl.Error.Message, "server exited: signal: killed"):
			t.Errorf("%s: message %q does not say how the server exited", tl.ID, tl.Error.Message)
		}
	}
	if err := e.Stop(t.Context()); err != nil {
		t.Errorf("Stop after the server died: %v", err)
	}
}

// Stop leaves nothing of the group running: a server and worker that
// ignore SIGTERM are killed when the grace ends, and a worker that ignores
// it is killed when its server exits.
func TestStopKillsTheGroup(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		grace bool // whether Stop waits the whole grace
	}{
		{mode: modeWorker, grace: true},
		{mode: modeWorkerTerm},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			before := runtime.NumGoroutine()
			var out syncBuffer
			grace := 300 * time.Millisecond
			if !tc.grace {
				grace = time.Hour
			}
			e := testServer{cfg: sim.Config{Model: "m"}, mode: tc.mode}.engine(t, Options{StopTimeout: grace, Stdout: &out})
			if err := e.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			pgid := e.PID()
			if live := liveInGroup(pgid); len(live) != 2 {
				t.Fatalf("the group runs %q, want the server and its worker; output %q", live, out.String())
			}
			began := time.Now()
			if err := e.Stop(t.Context()); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(began); tc.grace && (d < grace || d > grace+20*time.Second) {
				t.Errorf("Stop took %s with a grace of %s", d, grace)
			}
			checkGone(t, pgid)
			enginetest.NoGoroutinesLeft(t, before, 0)
		})
	}
}

// Stop with a context that has ended kills at once.
func TestStopCancelled(t *testing.T) {
	e := testServer{cfg: sim.Config{Model: "stubborn"}, mode: modeIgnoreTerm}.engine(t, Options{StopTimeout: time.Hour})
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	checkGone(t, e.PID())
}

// Cancelling Start kills the server that was starting.
func TestStartCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Cancel when the server says it serves: it is then still loading
	// (its readiness is an hour away).
	out := writerFunc(func(p []byte) {
		if bytes.Contains(p, []byte("serving")) {
			cancel()
		}
	})
	e := testServer{cfg: sim.Config{Model: "slow", StartupDelay: time.Hour}}.engine(t, Options{Stdout: out})
	err := e.Start(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Start: %v, want context.Canceled", err)
	}
	checkGone(t, e.PID())
}

type writerFunc func(p []byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

func TestMisuse(t *testing.T) {
	e, err := New(Options{Command: "true"})
	if err != nil {
		t.Fatal(err)
	}
	var re *runner.Error
	tl := runner.NewTimeline("q", time.Now())
	if err := e.Do(t.Context(), chat("q", "hi", 1), tl); !errors.As(err, &re) || re.Class != runner.ClassEngineExit || !strings.Contains(err.Error(), "not started") {
		t.Errorf("Do before Start: %v", err)
	}
	if tl.Attempts != 1 {
		t.Errorf("Do before Start left the timeline unsent: %+v", tl)
	}
	if err := e.Stop(t.Context()); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
	if err := e.Start(t.Context()); err == nil {
		t.Error("Start after Stop: no error")
	}
	if e.PID() != 0 {
		t.Error("Start after Stop started a process")
	}
}

// New reports template errors before anything starts.
func TestNewChecksTheCommand(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ cmd, dir, err string }{
		{cmd: "serve {{.Nope}}", dir: dir, err: "can't evaluate field Nope"},
		{cmd: `serve {{.File "weights"}}`, dir: dir, err: "no such file"},
		{cmd: "serve {{.Dir}}", dir: filepath.Join(dir, "missing"), err: "release directory"},
		{cmd: "", dir: dir, err: "no command"},
	} {
		if _, err := New(Options{Command: tc.cmd, Dir: tc.dir}); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("New(%q, %q) = %v; want error %q", tc.cmd, tc.dir, err, tc.err)
		}
	}
	if _, err := New(Options{Command: "serve --port {{.Port}} {{.Dir}}", Dir: dir}); err != nil {
		t.Errorf("a good command: %v", err)
	}
}
