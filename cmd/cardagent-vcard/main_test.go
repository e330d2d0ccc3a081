package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cardagent/cardagent/pcsc/scard"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
	"github.com/cardagent/cardagent/pcsc/vcard/vseries8"
)

func TestMain(m *testing.M) { os.Exit(pcsctest.Main(m)) }

func readPEMCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGenCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"gen-certs", "-out", dir}, &out, io.Discard, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readPEMCert(t, filepath.Join(dir, testpki.RootFile)))
	inter := x509.NewCertPool()
	inter.AddCert(readPEMCert(t, filepath.Join(dir, testpki.AuthCAFile)))
	inter.AddCert(readPEMCert(t, filepath.Join(dir, testpki.SignCAFile)))
	seen := map[string]bool{}
	for _, days := range testpki.ExpiryCases {
		sub := filepath.Join(dir, expiryDir(days))
		for _, name := range []string{testpki.AuthFile, testpki.SignFile} {
			c := readPEMCert(t, filepath.Join(sub, name))
			left := time.Until(c.NotAfter)
			if want := time.Duration(days) * 24 * time.Hour; left > want || left < want-time.Minute {
				t.Errorf("%s/%s: expires in %v, want %d days", sub, name, left, days)
			}
			_, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			if (err == nil) != (days > 0) {
				t.Errorf("%s/%s: verify: %v", sub, name, err)
			}
			if seen[c.Subject.CommonName+name] {
				t.Errorf("duplicate holder %s", c.Subject.CommonName)
			}
			seen[c.Subject.CommonName+name] = true
		}
		for _, name := range []string{testpki.AuthKeyFile, testpki.SignKeyFile} {
			if fi, err := os.Stat(filepath.Join(sub, name)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	if !strings.Contains(out.String(), "card-expired") {
		t.Errorf("output %q", out.String())
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"bogus"},
		{"gen-certs"},
		{"gen-certs", "-out", t.TempDir(), "-key", "rsa4096"},
		{"gen-certs", "-out", t.TempDir(), "extra"},
		{"insert", "--type", "series9"},
		{"insert", "--key", "ed25519"},
		{"insert", "--pin", "12"},
		{"insert", "--uuid", "12"},
		{"insert", "--type", "series8", "--key", "p256"},
		{"insert", "--nope"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			err := run(context.Background(), args, io.Discard, io.Discard, zap.NewNop())
			if !errors.Is(err, errUsage) {
				t.Errorf("err = %v, want a usage error", err)
			}
		})
	}
	if err := run(context.Background(), []string{"insert", "-h"}, io.Discard, io.Discard, zap.NewNop()); err != nil {
		t.Errorf("-h: %v", err)
	}
}

// fakeVPCD accepts card connections like vpcd: it asks each for its ATR.
type fakeVPCD struct {
	ln    net.Listener
	conns chan net.Conn
}

func listenFakeVPCD(t *testing.T, addr string) *fakeVPCD {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeVPCD{ln: ln, conns: make(chan net.Conn, 4)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(f.conns)
				return
			}
			f.conns <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return f
}

// next waits for the next card connection and checks it answers GET ATR.
func (f *fakeVPCD) next(t *testing.T, wantATR []byte) net.Conn {
	t.Helper()
	select {
	case c := <-f.conns:
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte{0, 1, 4}); err != nil { // GET ATR
			t.Fatal(err)
		}
		var hdr [2]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			t.Fatal(err)
		}
		atr := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(c, atr); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(atr, wantATR) {
			t.Errorf("ATR % X, want % X", atr, wantATR)
		}
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no card connection")
	}
	return nil
}

// TestKeepInsertedReconnects checks the reconnect loop against a fake vpcd:
// not listening at first, then closing the connection (a pcscd restart).
func TestKeepInsertedReconnects(t *testing.T) {
	// Reserve a port, then free it: nothing listens there at first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	card, err := vpiv.New(vpiv.Config{})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- keepInserted(ctx, addr, card, vcard.Insert, zap.New(core)) }()

	time.Sleep(300 * time.Millisecond)
	f := listenFakeVPCD(t, addr)
	c1 := f.next(t, vpiv.DefaultATR)
	c1.Close() // vpcd went away
	c2 := f.next(t, vpiv.DefaultATR)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("keepInserted did not return after cancel")
	}
	// The card closed its connection on removal.
	c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("after removal the connection gave %v, want EOF", err)
	}
	c2.Close()

	if n := logs.FilterMessageSnippet("vpcd not reachable; retrying").Len(); n != 1 {
		t.Errorf("%d 'not reachable' warnings, want exactly 1 (then debug)", n)
	}
	if n := logs.FilterMessageSnippet("reinserting").Len(); n != 1 {
		t.Errorf("%d 'reinserting' messages, want 1", n)
	}
	if n := logs.FilterMessage("card inserted").Len(); n != 2 {
		t.Errorf("%d 'card inserted', want 2", n)
	}
}

// withCard connects to reader (waiting for the card) and runs fn in a transaction-free shared connection.
func withCard(t *testing.T, p *pcsctest.PCSCD, reader string, fn func(c *scard.Card)) {
	t.Helper()
	ctx, err := scard.EstablishContext()
	if err != nil {
		t.Fatalf("EstablishContext: %v\n%s", err, p.Log())
	}
	defer ctx.Release()
	var c *scard.Card
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err = ctx.Connect(reader, scard.ShareShared, scard.ProtocolAny)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Connect: %v\n%s", err, p.Log())
	}
	defer c.Disconnect(scard.LeaveCard)
	fn(c)
}

func mustExchange(t *testing.T, tr pcsc.Transmitter, cmd pcsc.Command) pcsc.Response {
	t.Helper()
	r, err := pcsc.Exchange(tr, cmd)
	if err != nil {
		t.Fatalf("%v: %v", cmd, err)
	}
	return r
}

// TestInsertThroughPCSCD runs "insert" against a real pcscd: the card is
// seen, answers as a PIV card with the written certificate, survives a pcscd
// restart with its state (a wrong-PIN count), and is removed on cancel.
func TestInsertThroughPCSCD(t *testing.T) {
	p := pcsctest.Require(t)
	p.WaitCard(t, 0, false)
	const markerPIN = "97531864"
	certs := t.TempDir()
	core, logs := observer.New(zapcore.DebugLevel)
	var stdout pcsctest.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"insert", "--addr", p.Addr(0), "--pin", markerPIN, "--compress", "--certs-out", certs, "--days", "60"},
			&stdout, io.Discard, zap.New(core))
	}()
	defer func() {
		cancel()
		<-done
	}()

	var guid []byte
	withCard(t, p, pcsctest.ReaderNames[0], func(c *scard.Card) {
		if r := mustExchange(t, c, pcsc.Command{INS: 0xA4, P1: 4, Data: vpiv.AID, Le: 0}); r.SW != 0x9000 {
			t.Fatalf("SELECT: %04X", r.SW)
		}
		r := mustExchange(t, c, pcsc.Command{INS: 0xCB, P1: 0x3F, P2: 0xFF, Data: []byte{0x5C, 3, 0x5F, 0xC1, 0x05}, Le: 0})
		if r.SW != 0x9000 {
			t.Fatalf("GET DATA 9A: %04X", r.SW)
		}
		want := readPEMCert(t, filepath.Join(certs, "card", testpki.AuthFile))
		if !bytes.Contains(r.Data, []byte{0x71, 0x01, 0x01}) || bytes.Contains(r.Data, want.Raw) {
			t.Error("certificate not stored compressed with --compress")
		}
		pinBlock := append([]byte(markerPIN), 0xFF, 0xFF)[:8]
		pinBlock[0] ^= 1 // a wrong PIN
		if r := mustExchange(t, c, pcsc.Command{INS: 0x20, P2: 0x80, Data: pinBlock, Le: -1}); r.SW != 0x63C2 {
			t.Fatalf("wrong PIN: %04X", r.SW)
		}
		r = mustExchange(t, c, pcsc.Command{INS: 0xCB, P1: 0x3F, P2: 0xFF, Data: []byte{0x5C, 3, 0x5F, 0xC1, 0x02}, Le: 0})
		objs, _ := pcsc.ParseTLV(r.Data)
		inner, _ := pcsc.ParseTLV(objs[0].Value)
		guid, _ = pcsc.FindTLV(inner, 0x34)
	})
	if !strings.Contains(stdout.String(), "PIN "+markerPIN) || !strings.Contains(stdout.String(), "PUK 12345678") {
		t.Errorf("startup message %q does not give PIN and PUK", stdout.String())
	}

	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	withCard(t, p, pcsctest.ReaderNames[0], func(c *scard.Card) {
		mustExchange(t, c, pcsc.Command{INS: 0xA4, P1: 4, Data: vpiv.AID, Le: 0})
		if r := mustExchange(t, c, pcsc.Command{INS: 0x20, P2: 0x80, Le: -1}); r.SW != 0x63C2 {
			t.Errorf("after pcscd restart the PIN status is %04X, want 63C2 (same card)", r.SW)
		}
		r := mustExchange(t, c, pcsc.Command{INS: 0xCB, P1: 0x3F, P2: 0xFF, Data: []byte{0x5C, 3, 0x5F, 0xC1, 0x02}, Le: 0})
		if !bytes.Contains(r.Data, guid) {
			t.Error("a different card came back after the restart")
		}
	})

	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	done <- nil // for the deferred wait
	if n := logs.FilterMessageSnippet("reinserting").Len(); n != 1 {
		t.Errorf("%d reinsertions logged, want 1", n)
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), markerPIN) {
			t.Errorf("PIN in log line %q", e.Message)
		}
	}
}

func TestInsertSeries8(t *testing.T) {
	p := pcsctest.Require(t)
	p.WaitCard(t, 1, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"insert", "--addr", p.Addr(1), "--type", "series8", "--days", "-1"}, io.Discard, io.Discard, zap.NewNop())
	}()
	withCard(t, p, pcsctest.ReaderNames[1], func(c *scard.Card) {
		st, err := c.Status()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(st.Atr, vseries8.ATROberthur64k) {
			t.Errorf("ATR % X, want the series 8 default", st.Atr)
		}
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
