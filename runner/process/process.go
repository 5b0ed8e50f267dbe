package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/openai"
)

var (
	_ runner.Lifecycle = (*Engine)(nil)
	_ runner.Batcher   = (*Engine)(nil)
	_ runner.Describer = (*Engine)(nil)
)

// Host is the address the server is asked to listen on ({{.Host}}): the
// engine talks to it over loopback only.
const Host = "127.0.0.1"

// Defaults of Options.
const (
	// DefaultReadyTimeout is long because real servers are slow to start:
	// vLLM's own ready check waits 600 s (--ready-check-timeout-sec).
	DefaultReadyTimeout = 10 * time.Minute
	DefaultStopTimeout  = 10 * time.Second
)

// killWait bounds the wait for killed processes to die: only one stuck in
// the kernel (uninterruptible I/O, a GPU driver call) takes longer.
const killWait = 5 * time.Second

// exitGrace is how long a request that lost its connection waits to see
// whether the server exited, to report engine_exit rather than connect.
const exitGrace = time.Second

// Options configure an Engine. The zero value of every field but Command
// is the documented default.
type Options struct {
	// Command is the serving command, a text/template over Vars:
	//
	//	vllm serve {{.Dir}} --host {{.Host}} --port {{.Port}} --served-model-name {{.Model}}
	//	llama-server -m {{.File "model.gguf"}} --port {{.Port}}
	//
	// It is split into words as a shell would (Split: quotes and
	// backslashes, nothing else) and then each word is rendered, so a
	// value is always one argument, spaces and all. It is not run through
	// a shell unless Shell is set.
	Command string
	// Shell runs the rendered command with /bin/sh -c, for pipes,
	// redirections and variables. Values are then inserted as they are:
	// quote them in the template if they may hold spaces.
	Shell bool
	// Dir is the release directory ({{.Dir}}) and the server's working
	// directory; empty means the current directory, and {{.Dir}} empty.
	Dir string
	// Env is added to the server's environment (KEY=value).
	Env []string
	// Model is the served model name ({{.Model}}), sent with requests
	// that name none.
	Model string
	// ReadyTimeout bounds Start: the server must list a model on
	// GET /v1/models and answer a one-token request by then. Zero means
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// StopTimeout is the grace between SIGTERM and SIGKILL in Stop. Zero
	// means DefaultStopTimeout.
	StopTimeout time.Duration
	// Stdout and Stderr receive the server's output; nil discards it.
	// Either way the engine keeps the last 64 lines to quote in errors.
	Stdout io.Writer
	Stderr io.Writer
	// APIKey, KeepOutput, MaxConns and UserAgent go to the OpenAI engine
	// that sends the requests (openai.Options).
	APIKey     string
	KeepOutput bool
	MaxConns   int
	UserAgent  string
	// Logger gets the server's start, readiness and stop; nil is silent.
	Logger *slog.Logger
}

// Engine starts a model server on a release directory and sends requests
// to it over the OpenAI API. Start it, use it, and Stop it, even when
// Start failed. It is safe for concurrent use after Start.
type Engine struct {
	opts Options
	cmd  *command
	dir  string
	log  *slog.Logger
	out  *tail

	mu      sync.Mutex
	started bool
	stopped bool
	srv     *server // nil until the process started

	stopOnce sync.Once
	stopErr  error
}

// server is one started process.
type server struct {
	cmd      *exec.Cmd
	pgid     int
	argv     []string
	endpoint string
	oe       *openai.Engine

	sigMu  sync.Mutex // held while signalling the group and while reaping
	reaped bool

	exited  chan struct{} // closed once the process exited and was reaped
	waitErr error         // cmd.Wait's error, once exited is closed
}

// New checks opts and parses the command template; it starts nothing.
func New(opts Options) (*Engine, error) {
	if !supported {
		return nil, errors.New("process: the process engine needs a Unix system (process groups)")
	}
	c, err := parseCommand(opts.Command, opts.Shell)
	if err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir != "" {
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, fmt.Errorf("process: %w", err)
		}
		if fi, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("process: release directory: %w", err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("process: release directory %s is not a directory", dir)
		}
	}
	// Render once with a placeholder port, so that an unknown field or a
	// missing file is a usage error now rather than at Start.
	if _, err := c.render(Vars{Dir: dir, Host: Host, Port: 1, Model: opts.Model}); err != nil {
		return nil, err
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{opts: opts, cmd: c, dir: dir, log: log, out: &tail{}}, nil
}

// Start picks a free loopback port, starts the command in its own process
// group and returns when the server is ready. It fails with an
// *runner.Error of ClassEngineExit when the server could not start or
// exited first, and ClassTimeout when it was not ready within
// ReadyTimeout; the process group is killed then. Call Stop even when
// Start failed.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.started || e.stopped {
		e.mu.Unlock()
		return errors.New("process: Start called twice, or after Stop")
	}
	e.started = true
	e.mu.Unlock()

	port, err := freePort()
	if err != nil {
		return fmt.Errorf("process: picking a port: %w", err)
	}
	argv, err := e.cmd.render(Vars{Dir: e.dir, Host: Host, Port: port, Model: e.opts.Model})
	if err != nil {
		return err
	}
	base := "http://" + net.JoinHostPort(Host, strconv.Itoa(port))
	oe, err := openai.New(openai.Options{
		BaseURL:    base,
		APIKey:     e.opts.APIKey,
		Model:      e.opts.Model,
		MaxConns:   e.opts.MaxConns,
		KeepOutput: e.opts.KeepOutput,
		UserAgent:  e.opts.UserAgent,
	})
	if err != nil {
		return fmt.Errorf("process: %w", err)
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), e.opts.Env...)
	cmd.Stdout = teeTo(e.opts.Stdout, e.out)
	cmd.Stderr = teeTo(e.opts.Stderr, e.out)
	cmd.SysProcAttr = groupAttr()
	// A child that left the group may keep the output pipes open; Wait
	// gives up on them after this long.
	cmd.WaitDelay = killWait
	if err := cmd.Start(); err != nil {
		return &runner.Error{Class: runner.ClassEngineExit, Message: fmt.Sprintf("starting the server %s: %v", join(argv), err), Err: err}
	}
	s := &server{cmd: cmd, pgid: cmd.Process.Pid, argv: argv, endpoint: base, oe: oe, exited: make(chan struct{})}
	go s.watch()
	e.mu.Lock()
	stopped := e.stopped
	e.srv = s
	e.mu.Unlock()
	if stopped { // Stop ran while the process started and found none
		_ = e.terminate(context.WithoutCancel(ctx), s)
		return errors.New("process: stopped while starting")
	}
	e.log.Info("server started", "pid", s.pgid, "command", join(argv), "endpoint", base)

	began := time.Now()
	if err := e.waitReady(ctx, s); err != nil {
		e.log.Warn("server not ready", "pid", s.pgid, "error", err)
		_ = e.terminate(context.WithoutCancel(ctx), s)
		return err
	}
	e.log.Info("server ready", "pid", s.pgid, "after", time.Since(began).Round(time.Millisecond))
	return nil
}

// teeTo is w and the tail, or the tail alone.
func teeTo(w io.Writer, t *tail) io.Writer {
	if w == nil {
		return t
	}
	return io.MultiWriter(t, w)
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before the server binds it; the server then exits, and Start
// says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(Host, "0"))
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port, nil
}

// waitReady polls the OpenAI engine's readiness check with backoff until
// it passes, the process exits, ReadyTimeout passes or ctx ends.
func (e *Engine) waitReady(ctx context.Context, s *server) error {
	rctx, cancel := context.WithTimeout(ctx, e.opts.ReadyTimeout)
	defer cancel()
	go func() {
		select {
		case <-s.exited:
			cancel()
		case <-rctx.Done():
		}
	}()
	var last error
	wait := 20 * time.Millisecond
	for {
		err := s.oe.Ready(rctx)
		if err == nil && s.oe.Model() == "" {
			// Requests name the model readiness used, as servers such as
			// vLLM want one.
			_, err = s.oe.ResolveModel(rctx)
		}
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return e.exitError(s, "server exited before it was ready", nil, tailLines)
		default:
		}
		if ctx.Err() != nil {
			return fmt.Errorf("process: waiting for the server to be ready: %w", context.Cause(ctx))
		}
		if rctx.Err() != nil {
			saw := "no answer"
			if last != nil {
				saw = last.Error()
			}
			return &runner.Error{Class: runner.ClassTimeout,
				Message: fmt.Sprintf("server not ready after %s: last check: %s%s", e.opts.ReadyTimeout, saw, e.out.suffix(tailLines)),
				Err:     last}
		}
		last = err
		t := time.NewTimer(wait)
		select {
		case <-rctx.Done():
		case <-t.C:
		}
		t.Stop()
		wait = min(wait*3/2, time.Second)
	}
}

// exitError is the engine_exit error of a server that exited: how, why
// the request failed when there was one, and the server's last lines of
// output (lines of them: Start quotes many, a request's error few, as
// every later request carries one).
func (e *Engine) exitError(s *server, what string, cause *runner.Error, lines int) *runner.Error {
	<-s.exited
	how := "exit status 0"
	if s.waitErr != nil {
		how = s.waitErr.Error()
	}
	msg := what + ": " + how
	err := s.waitErr
	if cause != nil {
		msg += " (the request failed: " + cause.Message + ")"
		err = cause
	}
	return &runner.Error{Class: runner.ClassEngineExit, Message: msg + e.out.suffix(lines), Err: err}
}

// requestTail is how many lines of output a request's engine_exit error
// quotes.
const requestTail = 3

// watch waits for the process to exit, ends what is left of its group and
// reaps it.
func (s *server) watch() {
	var err error
	if waitExit(s.cmd.Process.Pid) {
		s.sigMu.Lock()
		// The leader is a zombie and still holds the group id: whatever
		// it left behind is killed before the id can be reused.
		_ = signalGroup(s.pgid, syscall.SIGKILL)
		waitGroup(s.pgid, killWait)
		err = s.cmd.Wait()
		s.reaped = true
		s.sigMu.Unlock()
	} else {
		err = s.cmd.Wait()
		s.sigMu.Lock()
		s.reaped = true
		s.sigMu.Unlock()
	}
	s.waitErr = err
	close(s.exited)
}

// signal sends sig to the process group while it is known to be ours.
func (s *server) signal(sig syscall.Signal) {
	s.sigMu.Lock()
	defer s.sigMu.Unlock()
	if !s.reaped {
		_ = signalGroup(s.pgid, sig)
	}
}

// running is the started server, or an engine_exit error saying why there
// is none.
func (e *Engine) running() (*server, error) {
	e.mu.Lock()
	s, started, stopped := e.srv, e.started, e.stopped
	e.mu.Unlock()
	switch {
	case stopped:
		return nil, runner.Errorf(runner.ClassEngineExit, "server stopped")
	case !started || s == nil:
		return nil, runner.Errorf(runner.ClassEngineExit, "server not started")
	}
	select {
	case <-s.exited:
		return nil, e.exitError(s, "server exited", nil, requestTail)
	default:
	}
	return s, nil
}

// Do sends req to the server (openai.Engine.Do). When the server has
// exited it fails at once with ClassEngineExit; a request whose
// connection broke because the server exited fails with ClassEngineExit
// too, not ClassConnect.
func (e *Engine) Do(ctx context.Context, req *runner.Request, tl *runner.Timeline) error {
	s, err := e.running()
	if err != nil {
		tl.MarkSent()
		tl.Finish()
		return err
	}
	return e.reclassify(ctx, s, s.oe.Do(ctx, req, tl))
}

// DoBatch sends a batch of completion requests (openai.Engine.DoBatch),
// with Do's handling of a server that exited.
func (e *Engine) DoBatch(ctx context.Context, reqs []*runner.Request, tls []*runner.Timeline) error {
	s, err := e.running()
	if err != nil {
		for _, tl := range tls {
			tl.MarkSent()
			tl.Finish()
		}
		return err
	}
	return e.reclassify(ctx, s, s.oe.DoBatch(ctx, reqs, tls))
}

// reclassify turns a broken connection into engine_exit when the server
// exited, waiting a moment for the exit to be seen: the connection breaks
// as the process dies, a little before the watcher reaps it.
func (e *Engine) reclassify(ctx context.Context, s *server, err error) error {
	if err == nil {
		return nil
	}
	re := runner.AsError(err)
	switch re.Class {
	case runner.ClassConnect, runner.ClassStreamCut, runner.ClassEmptyStream:
	default:
		return err
	}
	t := time.NewTimer(exitGrace)
	defer t.Stop()
	select {
	case <-s.exited:
	case <-t.C:
		return err
	case <-ctx.Done():
		return err
	}
	return e.exitError(s, "server exited", re, requestTail)
}

// Stop ends the server: SIGTERM to its process group, StopTimeout of
// grace, then SIGKILL, and waits until it is reaped. It is safe to call
// more than once, concurrently, before Start and after a failed Start;
// the first call does the work and later ones return its result. When
// ctx ends during the grace the group is killed at once.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	e.stopped = true
	s := e.srv
	e.mu.Unlock()
	e.stopOnce.Do(func() {
		if s != nil {
			e.stopErr = e.terminate(ctx, s)
			s.oe.CloseIdleConnections()
		}
	})
	return e.stopErr
}

// terminate ends the server's process group and reaps the server.
func (e *Engine) terminate(ctx context.Context, s *server) error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	s.signal(syscall.SIGTERM)
	t := time.NewTimer(e.opts.StopTimeout)
	defer t.Stop()
	select {
	case <-s.exited:
		e.log.Info("server stopped", "pid", s.pgid)
		return nil
	case <-t.C:
		e.log.Warn("server ignored SIGTERM; killing it", "pid", s.pgid, "grace", e.opts.StopTimeout)
	case <-ctx.Done():
		e.log.Warn("stop cancelled; killing the server", "pid", s.pgid)
	}
	s.signal(syscall.SIGKILL)
	// SIGKILL cannot be ignored; only a process stuck in the kernel
	// outlives it.
	t.Reset(3 * killWait)
	select {
	case <-s.exited:
		return nil
	case <-t.C:
		return fmt.Errorf("process: server (pid %d) did not exit %s after SIGKILL", s.pgid, 3*killWait)
	}
}

// Describe names the engine for the report: the rendered command and the
// endpoint once started, the template before.
func (e *Engine) Describe() runner.EngineInfo {
	e.mu.Lock()
	s := e.srv
	e.mu.Unlock()
	info := runner.EngineInfo{Kind: "process", Model: e.opts.Model, Command: e.opts.Command}
	if s != nil {
		info.Command, info.Endpoint = join(s.argv), s.endpoint
		if m := s.oe.Model(); m != "" {
			info.Model = m // the model readiness found, when none was given
		}
	}
	return info
}

// PID is the process id of the server (the leader of its process group),
// or 0 before Start.
func (e *Engine) PID() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv == nil {
		return 0
	}
	return e.srv.pgid
}
