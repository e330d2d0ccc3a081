package prompt

import (
	"context"
	"fmt"
)

// Prompt backends, as in the configuration (config.Prompt.Backend).
const (
	BackendAuto     = "auto"
	BackendDialog   = "dialog"
	BackendPinentry = "pinentry"
)

// Choose builds the prompter for a configured backend:
//
//   - "dialog": always the desktop dialog (ErrUnavailable when none can be shown);
//   - "pinentry": always pinentry (nil pinentry: none available);
//   - "auto": for each prompt, the desktop dialog when a display is there
//     and the dialog program is installed, else pinentry.
//
// pinentry may be nil (none configured or found). It returns nil and the
// reason when no prompter can ever be shown, and otherwise a sentence for
// the start-up log saying what will be used.
func Choose(backend string, dialog *Dialog, pinentry Prompter) (Prompter, string) {
	switch backend {
	case BackendDialog:
		if dialog == nil {
			return nil, "the desktop dialog backend is not configured"
		}
		if ok, why := dialog.Available(); !ok {
			return dialog, "PIN prompts: desktop dialog, unavailable for now: " + why
		}
		return dialog, "PIN prompts: desktop dialog"
	case BackendPinentry:
		if pinentry == nil {
			return nil, "no pinentry program available"
		}
		return pinentry, "PIN prompts: pinentry"
	case BackendAuto, "":
		if dialog == nil && pinentry == nil {
			return nil, "neither a desktop dialog nor a pinentry program is available"
		}
		a := &Auto{Dialog: dialog, Pinentry: pinentry}
		return a, "PIN prompts: " + a.describe()
	}
	return nil, fmt.Sprintf("unknown prompt backend %q", backend)
}

// Auto picks, for each prompt, the desktop dialog when it can be shown, else
// pinentry. Deciding per prompt keeps up with a desktop session that comes
// and goes (the agent may start before the display, or outlive it).
type Auto struct {
	Dialog   *Dialog
	Pinentry Prompter
}

var (
	_ Prompter  = (*Auto)(nil)
	_ Confirmer = (*Auto)(nil)
)

// pick returns the prompter for now, or why there is none.
func (a *Auto) pick() (Prompter, string) {
	why := "no desktop dialog configured"
	if a.Dialog != nil {
		ok, w := a.Dialog.Available()
		if ok {
			return a.Dialog, ""
		}
		why = w
	}
	if a.Pinentry != nil {
		return a.Pinentry, ""
	}
	return nil, why + ", and no pinentry program"
}

func (a *Auto) describe() string {
	p, why := a.pick()
	switch {
	case p == nil:
		return "none available for now (" + why + ")"
	case p == Prompter(a.Dialog):
		return "desktop dialog (pinentry when no display)"
	}
	if a.Dialog != nil {
		_, w := a.Dialog.Available()
		return "pinentry for now (" + w + ")"
	}
	return "pinentry"
}

// PIN asks with the prompter available now.
func (a *Auto) PIN(ctx context.Context, req Request) ([]byte, error) {
	p, why := a.pick()
	if p == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, why)
	}
	return p.PIN(ctx, req)
}

// Confirm asks with the desktop dialog; pinentry cannot ask a question, so
// without a dialog it returns ErrUnavailable.
func (a *Auto) Confirm(ctx context.Context, c Consent) (bool, error) {
	if a.Dialog == nil {
		return false, fmt.Errorf("%w: no desktop dialog configured", ErrUnavailable)
	}
	return a.Dialog.Confirm(ctx, c)
}
