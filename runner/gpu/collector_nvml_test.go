//go:build linux && cgo

package gpu

import (
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
)

const wantTwoGPUs = `# HELP airlock_gpu_collect_errors_total NVML calls that failed while scraping; unsupported fields are not errors.
# TYPE airlock_gpu_collect_errors_total counter
airlock_gpu_collect_errors_total 0
# HELP airlock_gpu_collector_up 1 when NVML initialised and the GPUs are read, 0 when GPU telemetry is unavailable.
# TYPE airlock_gpu_collector_up gauge
airlock_gpu_collector_up 1
# HELP airlock_gpu_energy_joules_total Energy used by the GPU since the driver loaded; starts again at zero when it reloads.
# TYPE airlock_gpu_energy_joules_total counter
airlock_gpu_energy_joules_total{compute_instance_id="",gpu="0",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000000-0000-0000-0000-000000000000"} 1000
airlock_gpu_energy_joules_total{compute_instance_id="",gpu="1",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000001-0000-0000-0000-000000000000"} 2000
# HELP airlock_gpu_memory_free_bytes Device memory free; for a GPU in MIG mode, per MIG instance only.
# TYPE airlock_gpu_memory_free_bytes gauge
airlock_gpu_memory_free_bytes{compute_instance_id="",gpu="0",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000000-0000-0000-0000-000000000000"} 4.1875931136e+10
airlock_gpu_memory_free_bytes{compute_instance_id="",gpu="1",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000001-0000-0000-0000-000000000000"} 4.0802189312e+10
# HELP airlock_gpu_memory_total_bytes Device memory; for a GPU in MIG mode, per MIG instance only.
# TYPE airlock_gpu_memory_total_bytes gauge
airlock_gpu_memory_total_bytes{compute_instance_id="",gpu="0",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000000-0000-0000-0000-000000000000"} 4.294967296e+10
airlock_gpu_memory_total_bytes{compute_instance_id="",gpu="1",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000001-0000-0000-0000-000000000000"} 4.294967296e+10
# HELP airlock_gpu_memory_used_bytes Device memory in use; for a GPU in MIG mode, per MIG instance only.
# TYPE airlock_gpu_memory_used_bytes gauge
airlock_gpu_memory_used_bytes{compute_instance_id="",gpu="0",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000000-0000-0000-0000-000000000000"} 1.073741824e+09
airlock_gpu_memory_used_bytes{compute_instance_id="",gpu="1",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000001-0000-0000-0000-000000000000"} 2.147483648e+09
# HELP airlock_gpu_power_watts Power draw of the GPU board.
# TYPE airlock_gpu_power_watts gauge
airlock_gpu_power_watts{compute_instance_id="",gpu="0",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000000-0000-0000-0000-000000000000"} 100
airlock_gpu_power_watts{compute_instance_id="",gpu="1",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000001-0000-0000-0000-000000000000"} 101
# HELP airlock_gpu_sm_clock_hertz Current SM clock.
# TYPE airlock_gpu_sm_clock_hertz gauge
airlock_gpu_sm_clock_hertz{compute_instance_id="",gpu="0",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000000-0000-0000-0000-000000000000"} 1.41e+09
airlock_gpu_sm_clock_hertz{compute_instance_id="",gpu="1",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000001-0000-0000-0000-000000000000"} 1.41e+09
# HELP airlock_gpu_temperature_celsius GPU core temperature.
# TYPE airlock_gpu_temperature_celsius gauge
airlock_gpu_temperature_celsius{compute_instance_id="",gpu="0",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000000-0000-0000-0000-000000000000"} 40
airlock_gpu_temperature_celsius{compute_instance_id="",gpu="1",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000001-0000-0000-0000-000000000000"} 41
# HELP airlock_gpu_utilization_ratio Share of the driver's last sample period in which a kernel ran on the GPU; not reported for MIG.
# TYPE airlock_gpu_utilization_ratio gauge
airlock_gpu_utilization_ratio{compute_instance_id="",gpu="0",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000000-0000-0000-0000-000000000000"} 0.1
airlock_gpu_utilization_ratio{compute_instance_id="",gpu="1",gpu_instance_id="",name="Mock NVIDIA A100-SXM4-40GB",uuid="GPU-00000001-0000-0000-0000-000000000000"} 0.2
`

func TestCollector(t *testing.T) {
	s, _ := newServer(t, 2)
	reg := prometheus.NewPedanticRegistry()
	c, err := NewCollector(reg, openMock(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if got := exposition(t, c); got != wantTwoGPUs {
		t.Errorf("scrape of two GPUs:\n%s\nwant:\n%s", got, wantTwoGPUs)
	}
	lint(t, c)
}

func TestCollectorMIG(t *testing.T) {
	s, devs := newServer(t, 1)
	enableMIG(devs[0])
	c, _ := NewCollector(nil, openMock(t, s))
	// The parent's memory is carried by its instances, so that
	// sum(airlock_gpu_memory_used_bytes) counts every byte once.
	want := `# HELP airlock_gpu_memory_used_bytes Device memory in use; for a GPU in MIG mode, per MIG instance only.
# TYPE airlock_gpu_memory_used_bytes gauge
airlock_gpu_memory_used_bytes{compute_instance_id="0",gpu="0",gpu_instance_id="1",name="NVIDIA A100-SXM4-40GB MIG 3g.20gb",uuid="MIG-00000000-0"} 1.073741824e+09
airlock_gpu_memory_used_bytes{compute_instance_id="0",gpu="0",gpu_instance_id="2",name="NVIDIA A100-SXM4-40GB MIG 3g.20gb",uuid="MIG-00000000-1"} 2.147483648e+09
`
	if got := exposition(t, c, "airlock_gpu_memory_used_bytes"); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if n := series(t, c, "airlock_gpu_utilization_ratio"); n != 0 {
		t.Errorf("%d utilization series for a GPU in MIG mode, want none", n)
	}
	if n := series(t, c, "airlock_gpu_power_watts"); n != 1 {
		t.Errorf("%d power series, want the parent's only", n)
	}
	lint(t, c)
}

func TestCollectorFailures(t *testing.T) {
	s, devs := newServer(t, 3)
	inv := openMock(t, s)
	c, _ := NewCollector(nil, inv)
	devs[0].GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	devs[1].GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	devs[2].GetUUIDFunc = func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST }

	if n := series(t, c, "airlock_gpu_temperature_celsius"); n != 0 {
		t.Errorf("%d temperature series, want none: failed, unsupported and lost", n)
	}
	if n := series(t, c, "airlock_gpu_power_watts"); n != 2 {
		t.Errorf("%d power series, want 2 (GPU 2 is lost)", n)
	}
	// The third scrape; each had one failed call.
	want := `# HELP airlock_gpu_collect_errors_total NVML calls that failed while scraping; unsupported fields are not errors.
# TYPE airlock_gpu_collect_errors_total counter
airlock_gpu_collect_errors_total 3
`
	if got := exposition(t, c, "airlock_gpu_collect_errors_total"); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	if err := inv.Close(); err != nil {
		t.Fatal(err)
	}
	if got := exposition(t, c); got != wantDown {
		t.Errorf("scrape after Close:\n%s\nwant:\n%s", got, wantDown)
	}
}
