//go:build !windows && !darwin

package prompt

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
)

// askList runs `zenity --list` with a hidden first column holding each
// row's number, which is what zenity prints for the row picked. It returns
// the row's index, or -1 when OK was pressed with no row picked. The cells
// go to its standard input, one per line (each is one line: safetext), so a
// cell is never read as an option and no name shows in the process list.
func askList(ctx context.Context, d listSpec) (int, error) {
	path, err := findDialogProgram(d.program)
	if err != nil {
		return -1, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	args := []string{"--list", "--title", d.title, "--text", zenityText(d.text), "--width", "720", "--height", "320",
		"--column", "#"}
	for _, c := range d.columns {
		args = append(args, "--column", c)
	}
	args = append(args, "--hide-column", "1", "--print-column", "1")
	if secs := int(math.Ceil(d.timeout.Seconds())); secs > 0 {
		args = append(args, "--timeout", strconv.Itoa(secs))
	}
	var in strings.Builder
	for i, row := range d.rows {
		in.WriteString(strconv.Itoa(i + 1))
		in.WriteByte('\n')
		for j := range d.columns {
			cell := ""
			if j < len(row) {
				cell = strings.NewReplacer("\n", " ", "\r", " ").Replace(row[j])
			}
			in.WriteString(cell)
			in.WriteByte('\n')
		}
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = strings.NewReader(in.String())
	stderr := &tailBuffer{max: 1024}
	cmd.Stderr = stderr
	cmd.WaitDelay = exitGrace
	out, err := cmd.Output()
	if err != nil {
		return -1, zenityError(err, stderr.String())
	}
	return listAnswer(string(out), len(d.rows)), nil
}

// listAnswer reads the row number a list dialog printed: 1..n gives its
// index, anything else (nothing picked) -1.
func listAnswer(out string, n int) int {
	s := strings.TrimSpace(out)
	if i := strings.IndexByte(s, '|'); i >= 0 { // several printed: take none
		return -1
	}
	k, err := strconv.Atoi(s)
	if err != nil || k < 1 || k > n {
		return -1
	}
	return k - 1
}
