// Package logfile writes the agent's log to a file, rotated by size.
//
// The file is in the user's log directory (Linux $XDG_STATE_HOME/cardagent
// or ~/.local/state/cardagent, Windows %LOCALAPPDATA%\cardagent\logs, macOS
// ~/Library/Logs/cardagent), as zap JSON, rotated by size so that the files
// never take more than MaxBytes*(Backups+1) bytes together.
//
// Rotation is synchronous, in the writing goroutine, with no background
// goroutine: the cap holds at every moment, and Close leaves nothing
// running. (gopkg.in/natefinch/lumberjack.v2 was considered: it removes old
// files from a goroutine that Close does not stop, and counts sizes in
// whole megabytes.)
package logfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Defaults.
const (
	DefaultName     = "cardagent.log"
	DefaultMaxBytes = 5 << 20 // 5 MiB per file
	DefaultBackups  = 3       // cardagent.log.1 ... .3: at most 20 MiB in all
)

// Options say where the log goes and how much is kept.
type Options struct {
	// Dir is the log directory; "" means DefaultDir().
	Dir string
	// Name is the file name (default cardagent.log).
	Name string
	// MaxBytes is the size at which the file is rotated (default 5 MiB,
	// at least 4096).
	MaxBytes int64
	// Backups is how many rotated files are kept (default 3).
	Backups int
	// ConsoleFallback makes OpenLogger write to the console only when the
	// file cannot be opened: for an agent run by `cardagent supervise`,
	// which logs the agent's console output into its own log (else every
	// entry would be in both files).
	ConsoleFallback bool
}

func (o *Options) defaults() error {
	if o.Dir == "" {
		d, err := DefaultDir()
		if err != nil {
			return err
		}
		o.Dir = d
	}
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxBytes < 4096 {
		return fmt.Errorf("log file size %d: want at least 4096 bytes", o.MaxBytes)
	}
	if o.Backups == 0 {
		o.Backups = DefaultBackups
	}
	if o.Backups < 0 || o.Backups > 100 {
		return fmt.Errorf("log backups %d: want 1 to 100", o.Backups)
	}
	return nil
}

// Writer is a size-capped, rotating log file. It is safe for concurrent
// use and implements zapcore.WriteSyncer.
type Writer struct {
	mu   sync.Mutex
	opts Options
	path string
	f    *os.File
	size int64
}

// Open opens (appending) or creates the log file, and its directory
// (mode 0700: logs name the user's cards and the sites they sign in to).
// On Unix the directory must be the user's own, and the file is opened
// without following a symbolic link.
func Open(opts Options) (*Writer, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening log: %w", err)
	}
	if err := checkDir(opts.Dir); err != nil {
		return nil, fmt.Errorf("opening log: %w", err)
	}
	w := &Writer{opts: opts, path: filepath.Join(opts.Dir, opts.Name)}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

// Path is the current log file's path.
func (w *Writer) Path() string { return w.path }

// MaxTotal is the most bytes the log files take together.
func (w *Writer) MaxTotal() int64 { return w.opts.MaxBytes * int64(w.opts.Backups+1) }

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|noFollow, 0o600)
	if err != nil {
		return fmt.Errorf("opening log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening log: %w", err)
	}
	w.f, w.size = f, fi.Size()
	if w.size > w.opts.MaxBytes {
		return w.rotate()
	}
	return nil
}

// Write appends p, rotating first when p would take the file past
// MaxBytes. An entry longer than MaxBytes is cut to fit.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return 0, errors.New("log file closed")
	}
	n := len(p)
	if int64(len(p)) > w.opts.MaxBytes {
		p = append(p[:w.opts.MaxBytes-1:w.opts.MaxBytes-1], '\n')
	}
	if w.size > 0 && w.size+int64(len(p)) > w.opts.MaxBytes {
		if err := w.rotate(); err != nil {
			return 0, err
		}
	}
	m, err := w.f.Write(p)
	w.size += int64(m)
	if err != nil {
		return m, err
	}
	return n, nil
}

// rotate renames name.(i) to name.(i+1), name to name.1, dropping the
// oldest, and starts a new file.
func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("rotating log: %w", err)
	}
	w.f = nil
	backup := func(i int) string { return w.path + "." + strconv.Itoa(i) }
	if err := os.Remove(backup(w.opts.Backups)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rotating log: %w", err)
	}
	for i := w.opts.Backups - 1; i >= 1; i-- {
		if err := os.Rename(backup(i), backup(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotating log: %w", err)
		}
	}
	if err := os.Rename(w.path, backup(1)); err != nil {
		return fmt.Errorf("rotating log: %w", err)
	}
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|noFollow, 0o600)
	if err != nil {
		return fmt.Errorf("rotating log: %w", err)
	}
	w.f, w.size = f, 0
	return nil
}

// Sync flushes the file to disk.
func (w *Writer) Sync() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	return w.f.Sync()
}

// Close closes the file; later writes fail.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// NewLogger returns the agent's logger: JSON lines at level into file (none
// when file is nil), and the same entries in consoleFormat ("console" or "json") to console when
// console is not nil (stderr, which the service manager keeps: the
// journal, launchd). level is debug, info, warn or error.
func NewLogger(file io.Writer, console io.Writer, consoleFormat, level string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil || lvl < zapcore.DebugLevel || lvl > zapcore.ErrorLevel {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	var cores []zapcore.Core
	if file != nil {
		cores = append(cores, zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(file), lvl))
	}
	if console != nil {
		var ce zapcore.Encoder
		switch consoleFormat {
		case "json":
			ce = zapcore.NewJSONEncoder(enc)
		case "console":
			cc := enc
			cc.EncodeLevel = zapcore.CapitalLevelEncoder
			ce = zapcore.NewConsoleEncoder(cc)
		default:
			return nil, fmt.Errorf("log format %q: want json or console", consoleFormat)
		}
		cores = append(cores, zapcore.NewCore(ce, zapcore.Lock(zapcore.AddSync(console)), lvl))
	}
	return zap.New(zapcore.NewTee(cores...)), nil
}

// ConsoleLogger is NewLogger without a file: entries in format ("console"
// or "json") to w only. PINs and other secrets are never passed to a
// logger: no field anywhere in cardagent carries one.
func ConsoleLogger(w io.Writer, format, level string) (*zap.Logger, error) {
	return NewLogger(nil, w, format, level)
}

// OpenLogger opens the log file with opts and returns the logger of
// NewLogger over it, and a function that flushes and closes the file.
// `cardagent run` uses it:
//
//	log, closeLog, err := logfile.OpenLogger(logfile.Options{}, env.Stderr, format, level)
//
// When the log file cannot be opened (no home directory, a full disk) the
// logger still writes to console and says so once: the agent must not fail
// to start over its log. Only a bad level or format is an error.
func OpenLogger(opts Options, console io.Writer, consoleFormat, level string) (*zap.Logger, func() error, error) {
	w, openErr := Open(opts)
	if openErr != nil {
		log, err := NewLogger(io.Discard, console, consoleFormat, level)
		if err != nil {
			return nil, nil, err
		}
		log.Warn("no log file: logging to the console only", zap.Error(openErr))
		return log, func() error { return log.Sync() }, nil
	}
	if opts.ConsoleFallback {
		console = nil
	}
	log, err := NewLogger(w, console, consoleFormat, level)
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	return log, func() error {
		_ = log.Sync()
		return w.Close()
	}, nil
}
