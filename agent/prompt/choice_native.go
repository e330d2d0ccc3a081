//go:build windows || darwin

package prompt

import (
	"context"
	"strconv"
	"strings"

	"github.com/ncruces/zenity"
)

// askList shows a native list: each item is "N. cell, cell, ..." and the
// item picked is mapped back to its index by its number. OK with nothing
// picked is -1.
func askList(ctx context.Context, d listSpec) (int, error) {
	items := make([]string, len(d.rows))
	for i, row := range d.rows {
		cells := make([]string, 0, len(row))
		for j, c := range row {
			if j < len(d.columns) && j > 0 {
				c = d.columns[j] + ": " + c
			}
			cells = append(cells, c)
		}
		items[i] = strconv.Itoa(i+1) + ". " + strings.Join(cells, "; ")
	}
	s, err := zenity.List(d.text, items,
		zenity.Title(d.title),
		zenity.OKLabel("OK"),
		zenity.CancelLabel("Cancel"),
		zenity.Context(ctx),
	)
	if err != nil {
		return -1, nativeError(err)
	}
	num, _, ok := strings.Cut(s, ". ")
	k, err := strconv.Atoi(num)
	if !ok || err != nil || k < 1 || k > len(items) || items[k-1] != s {
		return -1, nil
	}
	return k - 1, nil
}
