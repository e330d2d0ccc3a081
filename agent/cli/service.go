package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/agentsupervisor"
	"github.com/cardagent/cardagent/agent/doctor"
	"github.com/cardagent/cardagent/agent/logfile"
	"github.com/cardagent/cardagent/installer"
)

// serviceCmd is `cardagent service install|uninstall|start|stop|status`:
// the per-user autostart (docs/deployment.md).
func serviceCmd(ctx context.Context, env *Env, args []string) error {
	const use = "usage: cardagent service install|uninstall|start|stop|status [flags]"
	if helpAsked(env, args, use) {
		return nil
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError{use}
	}
	action, args := args[0], args[1:]
	fs := newFlags("service "+action, env)
	var root, exe *string
	var force *bool
	if action == "install" || action == "uninstall" || action == "status" {
		root = fs.String("root", "", "install into this directory as if it were / (Linux and macOS; for packaging and tests)")
	}
	if action == "install" {
		exe = fs.String("exe", "", "the program the autostart runs (default: this program; with --root, "+installer.LinuxBinary+" on Linux)")
	}
	if action == "install" || action == "uninstall" {
		force = fs.Bool("force", false, "also replace or remove an autostart the cardagent package installed")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	switch action {
	case "install", "uninstall", "status":
		a, reg, err := autostart(*root, exe)
		if err != nil {
			return err
		}
		switch action {
		case "install":
			return serviceInstall(env, a, *root, reg, *force)
		case "uninstall":
			if err := a.Uninstall(*root, reg, *force); err != nil {
				return permissionHint(err)
			}
			fmt.Fprintln(env.Stdout, "Removed the cardagent autostart. Agents already running stop at sign-out (or now: cardagent service stop).")
			return nil
		}
		return serviceStatus(ctx, env, a, *root, reg)
	case "start", "stop":
		c, err := controller()
		if err != nil {
			return err
		}
		if action == "start" {
			err = c.Start()
		} else {
			err = c.Stop()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", action, err)
		}
		fmt.Fprintf(env.Stdout, "cardagent %sed in this session.\n", map[string]string{"start": "start", "stop": "stopp"}[action])
		return nil
	}
	return usageError{fmt.Sprintf("unknown service action %q: want install, uninstall, start, stop or status", action)}
}

// autostart builds this system's autostart.
func autostart(root string, exeFlag *string) (installer.Autostart, installer.Registry, error) {
	goos := runtime.GOOS
	if root != "" && goos == "windows" {
		return installer.Autostart{}, nil, usageError{"--root is not available on Windows: the autostart is a registry value"}
	}
	exe := ""
	if exeFlag != nil {
		exe = *exeFlag
	}
	if exe == "" {
		switch {
		case root != "" && goos == "darwin":
			exe = installer.MacBinary
		case root != "":
			exe = installer.LinuxBinary
		default:
			self, err := os.Executable()
			if err != nil {
				return installer.Autostart{}, nil, err
			}
			if s, err := filepath.EvalSymlinks(self); err == nil {
				self = s
			}
			exe = self
		}
	}
	if goos == "windows" {
		exe = installer.WindowsAgentExe(exe)
	} else if goos != "darwin" {
		goos = "linux" // the systemd user unit serves every systemd system
	}
	a, err := installer.AutostartFor(goos, exe, installer.ByCommand)
	return a, installer.NewRegistry(), err
}

func serviceInstall(env *Env, a installer.Autostart, root string, reg installer.Registry, force bool) error {
	if err := a.Install(root, reg, force); err != nil {
		return permissionHint(err)
	}
	for _, f := range a.Files {
		fmt.Fprintf(env.Stdout, "wrote %s\n", filepath.Join(root, f.Path))
	}
	for _, l := range a.Links {
		fmt.Fprintf(env.Stdout, "linked %s -> %s\n", filepath.Join(root, l.Path), l.Target)
	}
	for _, v := range a.Registry {
		fmt.Fprintf(env.Stdout, "set HKLM\\%s\\%s = %s\n", v.Key, v.Name, v.Value)
	}
	fmt.Fprintln(env.Stdout, "The agent starts in every user's session at sign-in. To start it now in yours: cardagent service start")
	return nil
}

func serviceStatus(ctx context.Context, env *Env, a installer.Autostart, root string, reg installer.Registry) error {
	ok, err := a.Installed(root, reg)
	switch {
	case err != nil:
		fmt.Fprintf(env.Stdout, "autostart: unknown (%v)\n", err)
	case ok:
		fmt.Fprintln(env.Stdout, "autostart: installed for every user")
	default:
		fmt.Fprintln(env.Stdout, "autostart: not installed (sudo cardagent service install)")
	}
	if root != "" {
		return nil
	}
	if c, err := controller(); err != nil {
		fmt.Fprintf(env.Stdout, "service manager: %v\n", err)
	} else if st, err := c.Status(); err != nil {
		fmt.Fprintf(env.Stdout, "agent in this session: %s (%v)\n", installer.StatusWords(st), err)
	} else {
		fmt.Fprintf(env.Stdout, "agent in this session: %s\n", installer.StatusWords(st))
	}
	// Whatever started it, is an agent answering?
	d := &doctor.Doctor{Scanner: noScan{}, Policies: noPolicies{}, Tray: doctor.AlwaysTray(""), Legacy: noLegacy{}}
	fmt.Fprintf(env.Stdout, "loopback API: %s\n", d.Run(ctx).Result(doctor.CheckAgent).Message)
	return nil
}

// The status command only needs doctor's agent check.
type (
	noScan     struct{}
	noPolicies struct{}
	noLegacy   struct{}
)

func (noScan) Scan(context.Context) (*agent.Inventory, error) { return nil, errors.New("not scanned") }
func (noPolicies) Check([]string) []doctor.BrowserPolicy      { return nil }
func (noLegacy) Detect(context.Context) []string              { return nil }

func controller() (installer.Controller, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return installer.NewController(exe)
}

func permissionHint(err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w (the autostart is for every user: run this as root or administrator)", err)
	}
	return err
}

// superviseCmd is `cardagent supervise [run flags]`: it runs `cardagent run`
// as a child and restarts it whenever it dies. The Windows autostart (HKLM
// Run key) starts it in every session; systemd and launchd restart the agent
// themselves on Linux and macOS.
func superviseCmd(ctx context.Context, env *Env, args []string) error {
	release, err := agentsupervisor.SessionLock()
	if errors.Is(err, agentsupervisor.ErrRunning) {
		fmt.Fprintln(env.Stderr, "cardagent is already running in this session.")
		return nil
	}
	if err != nil {
		return err
	}
	defer release()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	log, closeLog, err := logfile.OpenLogger(logfile.Options{Name: "supervise.log", MaxBytes: 1 << 20, Backups: 1}, nil, "", "info")
	if err != nil {
		return err
	}
	defer closeLog()
	log = log.Named("supervise")
	// The windowless build has no console: the agent's own output (a
	// configuration error before its log opens, or everything when it has
	// no log file) goes into this log; once its log file is open the agent
	// writes only there (--console-log=fallback).
	out := &lineLog{log: log}
	return agentsupervisor.Run(ctx, agentsupervisor.Options{
		Path:   exe,
		Args:   append([]string{"run", "--console-log=fallback"}, args...),
		Stdout: out,
		Stderr: out,
		Log:    log,
	})
}

// lineLog writes each line it receives as a log entry.
type lineLog struct {
	log  *zap.Logger
	mu   sync.Mutex
	part []byte
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		line := string(bytes.TrimRight(l.part[:i], "\r"))
		l.part = l.part[i+1:]
		if len(line) > 2000 {
			line = line[:2000] + "..."
		}
		if line != "" {
			l.log.Info("agent output", zap.String("line", line))
		}
	}
	if len(l.part) > 64<<10 {
		l.part = l.part[:0] // a runaway line without an end
	}
	return len(p), nil
}
