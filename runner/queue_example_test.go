package runner_test

import (
	"context"
	"fmt"

	"github.com/airlock-dev/airlock/runner"
	"github.com/airlock-dev/airlock/runner/gpu"
)

// A queue on a machine without a GPU driver runs a job that needs a GPU
// CPU-only, hiding the GPUs from its server, unless the job requires one.
// On a GPU machine, pass the inventory from gpu.Open instead.
func ExampleQueue() {
	ctx := context.Background()
	q, err := runner.NewQueue(runner.QueueConfig{
		Inventory: gpu.Unavailable("no GPU: NVML library not found"),
		MaxJobs:   2,
	})
	if err != nil {
		panic(err)
	}
	defer q.Close(ctx)

	eval, err := q.Submit(runner.Job{
		ID:       "eval-sha256:4f2a",
		Kind:     runner.JobEval,
		Priority: 10,
		Need:     gpu.Need{GPUs: 1, MemoryBytes: 16 << 30},
		Run: func(ctx context.Context, a runner.Assignment) error {
			// Start the model server with a.Env(), run the suite.
			fmt.Println("env:", a.Env())
			fmt.Println("why:", a.Reason)
			return nil
		},
	})
	if err != nil {
		panic(err)
	}
	if err := eval.Wait(ctx); err != nil {
		panic(err)
	}
	fmt.Println("eval", eval.State())

	bench, err := q.Submit(runner.Job{
		ID:         "bench-sha256:4f2a",
		Kind:       runner.JobBench,
		Need:       gpu.Need{GPUs: 1, MemoryBytes: 16 << 30},
		RequireGPU: true, // a benchmark on a CPU measures nothing useful
		Run:        func(context.Context, runner.Assignment) error { return nil },
	})
	if err != nil {
		panic(err)
	}
	err = bench.Wait(ctx)
	fmt.Printf("bench %s: %v\n", bench.State(), err)
	// Output:
	// env: [CUDA_VISIBLE_DEVICES=]
	// why: no GPU: NVML library not found; running CPU-only
	// eval done
	// bench failed: job "bench-sha256:4f2a": job requires a GPU and none is usable: no GPU: NVML library not found
}
