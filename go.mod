module github.com/cardagent/cardagent

go 1.26

require github.com/ebfe/scard v0.0.0-20241214075232-7af069cabc25

require (
	github.com/go-piv/piv-go/v2 v2.6.0 // indirect
	github.com/miekg/pkcs11 v1.1.2 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	go.uber.org/zap v1.28.0 // indirect
)
