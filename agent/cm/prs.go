package cm

import (
	"encoding/json"
	"net/http"
)

// portReply is the Port Service's answer: {"portData":{"portNumber":N},"faultException":null}.
type portReply struct {
	PortData       portData `json:"portData"`
	FaultException *fault   `json:"faultException"`
}

type portData struct {
	PortNumber int `json:"portNumber"`
}

// faultReply is a Port Service failure, still HTTP 200. NHS clients read the
// fault in two casings (faultException.code/.message, and the older
// FaultException.Code/.Message), so both are sent; there is no portData.
type faultReply struct {
	FaultException  fault      `json:"faultException"`
	FaultExceptionU faultUpper `json:"FaultException"`
}

type fault struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type faultUpper struct {
	Code    string `json:"Code"`
	Message string `json:"Message"`
}

// connectReply is the answer of GET /PRS/ConnectPRService. The older NHS
// Port Service library compares statusCode with the string "200".
type connectReply struct {
	StatusCode string `json:"statusCode"`
}

// FaultCode is the Port Service fault code cardagent sends: Credential
// Management's own code for "no signing service for this user".
const FaultCode = "PR30007"

// Fault messages.
const (
	faultNoPrompt = "Request failed due to unknown exception. Exception=cardagent cannot show a PIN prompt on this desktop"
	faultBusy     = "Request failed due to unknown exception. Exception=cardagent is busy with other signing requests; try again"
)

// getPortNumber names the port of the signing hub: this one. It answers a
// fault (HTTP 200, so the page fails at once rather than waiting for a hub
// that cannot serve it) when no PIN prompt can be shown or every hub
// connection is busy.
func (s *Server) getPortNumber(w http.ResponseWriter) {
	msg := ""
	switch {
	case s.prompter == nil:
		msg = faultNoPrompt
	case s.hub.Full():
		msg = faultBusy
	}
	if msg != "" {
		writeJSON(w, faultReply{FaultException: fault{FaultCode, msg}, FaultExceptionU: faultUpper{FaultCode, msg}})
		return
	}
	writeJSON(w, portReply{PortData: portData{PortNumber: s.Port()}})
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
