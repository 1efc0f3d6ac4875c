package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CPU accounting from Linux /proc, so a run shows how the cores were split
// between the server, PostgreSQL and the generator itself. Elsewhere, or when
// /proc cannot be read, the figures are simply absent.

// clockTicks is USER_HZ, which is 100 on every Linux architecture Go supports
// (sysconf(_SC_CLK_TCK) is not reachable without cgo).
const clockTicks = 100

// cpuTarget is a set of processes to account: one pid, every process whose
// command name (/proc/PID/comm) is comm, or every process whose command line
// has the word cmdline. PostgreSQL puts the database name in each backend's
// command line, so cmdline:DB picks the backends serving one database; such
// a target is usually part of another (comm:postgres), so it does not count
// towards "other".
type cpuTarget struct {
	label   string
	pid     int
	comm    string
	cmdline string
}

// parseCPUTargets reads "label=pid:N,label=comm:NAME,label=cmdline:WORD".
func parseCPUTargets(s string) ([]cpuTarget, error) {
	var out []cpuTarget
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		label, spec, ok := strings.Cut(part, "=")
		kind, val, ok2 := strings.Cut(spec, ":")
		if !ok || !ok2 || label == "" || val == "" {
			return nil, fmt.Errorf("%q: want label=pid:N, label=comm:NAME or label=cmdline:WORD", part)
		}
		t := cpuTarget{label: label}
		switch kind {
		case "pid":
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("%q: bad pid", part)
			}
			t.pid = n
		case "comm":
			t.comm = val
		case "cmdline":
			t.cmdline = val
		default:
			return nil, fmt.Errorf("%q: want pid:, comm: or cmdline:", part)
		}
		out = append(out, t)
	}
	return out, nil
}

// cpuSample is CPU time in clock ticks: per target and process (by pid),
// the generator itself, and the whole machine (busy, and waiting for I/O).
// A target's use over a window is summed per process: a sum over whatever
// processes matched at each sample went negative (and was shown as 0) when
// matching processes exited in the window, such as another workload's
// PostgreSQL backends under comm:postgres.
type cpuSample struct {
	targets      []map[int]int64
	self         int64
	busy, iowait int64
	ok           bool
}

// cpuShare is CPU use over a window in percent of one core.
type cpuShare struct {
	label string
	pct   float64
}

func sampleCPU(targets []cpuTarget) cpuSample {
	if runtime.GOOS != "linux" {
		return cpuSample{}
	}
	s := cpuSample{targets: make([]map[int]int64, len(targets)), ok: true}
	var err error
	if s.busy, s.iowait, err = machineTicks(); err != nil {
		return cpuSample{}
	}
	s.self, _ = procTicks("self")
	var procs []procInfo
	for i, t := range targets {
		s.targets[i] = map[int]int64{}
		if t.pid > 0 {
			s.targets[i][t.pid], _ = procTicks(strconv.Itoa(t.pid))
			continue
		}
		if procs == nil {
			procs = allProcs()
		}
		for _, p := range procs {
			if t.comm != "" && p.comm == t.comm || t.cmdline != "" && slices.Contains(p.args, t.cmdline) {
				s.targets[i][p.pid] = p.ticks
			}
		}
	}
	return s
}

// ticksBetween is what the processes of after used since before: a process
// not in before started in the window and counts whole; one that exited in
// the window took its ticks with it and counts nothing.
func ticksBetween(before, after map[int]int64) int64 {
	var d int64
	for pid, t := range after {
		d += max(t-before[pid], 0)
	}
	return d
}

// cpuUsage is each target's CPU use between two samples, then the
// generator's own, the rest, the whole machine's busy time and its I/O wait.
func cpuUsage(targets []cpuTarget, before, after cpuSample, elapsed time.Duration) []cpuShare {
	if !before.ok || !after.ok || elapsed <= 0 {
		return nil
	}
	pct := func(ticks int64) float64 {
		// A process that exited in the window takes its ticks with it;
		// never report a negative share.
		return 100 * float64(max(ticks, 0)) / clockTicks / elapsed.Seconds()
	}
	out := make([]cpuShare, 0, len(targets)+4)
	accounted := after.self - before.self
	for i, t := range targets {
		d := ticksBetween(before.targets[i], after.targets[i])
		if t.cmdline == "" {
			accounted += max(d, 0)
		}
		out = append(out, cpuShare{t.label, pct(d)})
	}
	busy := after.busy - before.busy
	return append(out,
		cpuShare{"herald-load", pct(after.self - before.self)},
		// other: everything else that ran (the kernel's own threads, and any
		// other work on the machine, which makes the run less trustworthy).
		cpuShare{"other", pct(busy - accounted)},
		cpuShare{"machine-busy", pct(busy)},
		cpuShare{"iowait", pct(after.iowait - before.iowait)},
	)
}

// machineTicks reads the first line of /proc/stat.
func machineTicks() (busy, iowait int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected format")
	}
	var total int64
	vals := make([]int64, len(f)-1)
	for i, s := range f[1:] {
		vals[i], _ = strconv.ParseInt(s, 10, 64)
		if i < 8 { // user nice system idle iowait irq softirq steal; guest is inside user
			total += vals[i]
		}
	}
	idle, iow := vals[3], vals[4]
	return total - idle - iow, iow, nil
}

// procTicks is utime+stime of /proc/<pid>/stat.
func procTicks(pid string) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces: fields
	// start after the last ')'. utime and stime are fields 14 and 15, the
	// 12th and 13th after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s, nil
}

// procInfo is one process's pid, name, command line words and CPU ticks.
type procInfo struct {
	pid   int
	comm  string
	args  []string
	ticks int64
}

// allProcs lists every process that can be read.
func allProcs() []procInfo {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := make([]procInfo, 0, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		t, err := procTicks(e.Name())
		if err != nil {
			continue
		}
		out = append(out, procInfo{
			pid:   pid,
			comm:  string(bytes.TrimSpace(comm)),
			args:  strings.Fields(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))),
			ticks: t,
		})
	}
	return out
}
