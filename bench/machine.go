package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// Machine is what a reader needs to know about the host a report comes from.
type Machine struct {
	CPU       string `json:"cpu"`   // model name from /proc/cpuinfo, or "unknown (REASON)"
	Cores     int    `json:"cores"` // logical CPUs usable by this process
	OS        string `json:"os"`    // GOOS/GOARCH
	GoVersion string `json:"go_version"`
	Stoker    string `json:"stoker_version"`
	Commit    string `json:"stoker_commit"`
	Build     string `json:"build"` // "cpu build" or "cuda build"
	// Modified is true when the binary was built from a working tree with
	// uncommitted changes (Go's vcs.modified), so Commit alone does not
	// reproduce it.
	Modified bool `json:"stoker_tree_modified"`
	// LoadAvg is /proc/loadavg's 1, 5 and 15 minute load when the report
	// was made: above Cores, other work competed with the measurement.
	LoadAvg string `json:"load_avg"`
	// GPU and Driver come from NVML in a cuda build; GPUNote says why they
	// are empty ("NVML unavailable: …").
	GPU     string `json:"gpu,omitempty"`
	Driver  string `json:"gpu_driver,omitempty"`
	GPUNote string `json:"gpu_note,omitempty"`
}

// DescribeMachine gathers the host's facts; version, commit and build are
// the caller's (the command's link-time values).
func DescribeMachine(version, commit, build string) Machine {
	m := Machine{
		CPU: cpuModel(), Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		GoVersion: runtime.Version(), Stoker: version, Commit: commit, Build: build,
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(data)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, st := range bi.Settings {
			if st.Key == "vcs.modified" {
				m.Modified = st.Value == "true"
			}
		}
	}
	gpu, driver, err := gpuFacts()
	if err != nil {
		m.GPUNote = err.Error()
	} else {
		m.GPU, m.Driver = gpu, driver
	}
	return m
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return cpuModelFrom(data)
}

// cpuModelFrom reads the first "model name" line of /proc/cpuinfo.
func cpuModelFrom(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown (no model name in /proc/cpuinfo)"
}
