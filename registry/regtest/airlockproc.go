package regtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// AirlockConfig says how RunAirlock starts `airlock registry serve`.
type AirlockConfig struct {
	// Binary is the airlock executable (make build writes bin/airlock).
	Binary string
	// Dir holds the storage root Dir/root and the log Dir/registry.log. It
	// is created if missing and left in place by Stop.
	Dir string
	// Args are further `registry serve` flags, such as --config.
	Args []string
}

// RunAirlock starts `airlock registry serve` as a child process on a free
// loopback port and returns once GET /v2/ answers. It is the out-of-process
// counterpart of Airlock, for benchmarks and demos that measure or show the
// real binary.
func RunAirlock(ctx context.Context, cfg AirlockConfig) (*Proc, error) {
	if cfg.Binary == "" || cfg.Dir == "" {
		return nil, errors.New("starting airlock registry serve: AirlockConfig needs Binary and Dir")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("starting airlock registry serve: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("starting airlock registry serve: %w", err)
	}
	root := filepath.Join(dir, "root")
	for i := 1; ; i++ {
		addr, err := FreeLoopbackAddr()
		if err != nil {
			return nil, fmt.Errorf("starting airlock registry serve: %w", err)
		}
		args := append([]string{"registry", "serve", "--addr", addr, "--root", root}, cfg.Args...)
		p, err := startProc(ctx, "airlock registry serve", dir, addr, root, cfg.Binary, args...)
		if err == nil || i >= portAttempts || !errors.Is(err, errAddrInUse) {
			return p, err
		}
	}
}
