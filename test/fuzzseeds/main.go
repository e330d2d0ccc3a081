// Command fuzzseeds writes the seed corpora of the repository's fuzz
// targets.
//
// It writes them (PKG/testdata/fuzz/FuzzXxx/seed-*, which `go test` runs as
// regression cases and `go test -fuzz` starts from) from real data rather
// than hand-typed bytes: the virtual PIV and series 8 cards' answers to the
// real drivers (identify, open, certificates, PIN status, signing, PIN
// change and unblock), the test PKI's NHS-profile certificates and tokens
// signed with its keys, the scripted pinentry's Assuan output, this
// machine's /proc/net/tcp, the shipped configuration template and property
// lists, and the JS client's messages.
//
// From the module root:
//
//	go run ./test/fuzzseeds            # or scripts/fuzz --seeds
//
// Files named seed-* are overwritten; other files in the corpus directories
// (crashers kept as regression cases) are left alone. Keys and GUIDs are
// random, so the bytes change at every run while the structures stay.
package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/drivers"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
	"github.com/cardagent/cardagent/pcsc/vcard/vseries8"
)

func main() {
	root := flag.String("root", ".", "module root (the directory holding go.mod)")
	flag.Parse()
	if _, err := os.Stat(filepath.Join(*root, "go.mod")); err != nil {
		fatal(fmt.Errorf("%s is not the module root: %w", *root, err))
	}
	g := &gen{root: *root}
	if err := g.run(); err != nil {
		fatal(err)
	}
	fmt.Printf("wrote %d seeds for %d fuzz targets\n", g.files, len(g.targets))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "fuzzseeds:", err)
	os.Exit(1)
}

type gen struct {
	root    string
	files   int
	targets map[string]bool
}

// seed writes one corpus entry for target in package directory pkg, in the
// encoding `go test` reads (internal/fuzz: "go test fuzz v1" and one typed
// literal per argument).
func (g *gen) seed(pkg, target, name string, args ...any) error {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case byte:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		case bool:
			fmt.Fprintf(&b, "bool(%v)\n", v)
		case int:
			fmt.Fprintf(&b, "int(%d)\n", v)
		default:
			return fmt.Errorf("seed %s/%s: unsupported argument type %T", target, name, a)
		}
	}
	dir := filepath.Join(g.root, filepath.FromSlash(pkg), "testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if g.targets == nil {
		g.targets = map[string]bool{}
	}
	g.targets[pkg+"."+target] = true
	g.files++
	return os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(b.String()), 0o644)
}

func (g *gen) run() error {
	pki, err := testpki.New()
	if err != nil {
		return err
	}
	spec := testpki.CardSpec{UUID: "555253521108", Surname: "RANDOM", Forename: "USERQ", DaysLeft: 400}
	rsaCreds, err := pki.IssueCard(spec)
	if err != nil {
		return err
	}
	ecSpec := spec
	ecSpec.KeyType = testpki.P256
	ecCreds, err := pki.IssueCard(ecSpec)
	if err != nil {
		return err
	}
	steps := []func() error{
		func() error { return g.cards(rsaCreds, ecCreds) },
		func() error { return g.certificates(pki, rsaCreds, ecCreds) },
		func() error { return g.tokens(rsaCreds, ecCreds) },
		g.requests,
		g.procNet,
		g.configs,
		g.plists,
		g.assuan,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// recorder passes APDUs to a virtual card and keeps both sides.
type recorder struct {
	card vcard.Card
	log  []apdu
}

type apdu struct{ cmd, resp []byte }

func (r *recorder) Transmit(cmd []byte) ([]byte, error) {
	resp, err := r.card.Transmit(cmd)
	if err == nil {
		r.log = append(r.log, apdu{bytes.Clone(cmd), bytes.Clone(resp)})
	}
	return resp, err
}

// exchange is one command as the driver meant it: chained parts joined,
// GET RESPONSE answers appended.
type exchange struct {
	cla, ins, p1, p2 byte
	data             []byte // command data
	resp             []byte // response data
	sw               uint16
}

func exchanges(log []apdu) []exchange {
	var out []exchange
	var pending []byte // data of chained parts so far
	for _, a := range log {
		cmd, resp := a.cmd, a.resp
		if len(cmd) < 4 || len(resp) < 2 {
			continue
		}
		data := []byte{}
		if len(cmd) > 5 {
			data = cmd[5 : 5+int(cmd[4])]
		}
		sw := uint16(resp[len(resp)-2])<<8 | uint16(resp[len(resp)-1])
		body := resp[:len(resp)-2]
		if cmd[1] == 0xC0 && len(out) > 0 { // GET RESPONSE continues the last exchange
			last := &out[len(out)-1]
			last.resp = append(last.resp, body...)
			last.sw = sw
			continue
		}
		if cmd[0]&0x10 != 0 { // a chained part: more follows
			pending = append(pending, data...)
			continue
		}
		out = append(out, exchange{cla: cmd[0], ins: cmd[1], p1: cmd[2], p2: cmd[3], data: append(pending, data...), resp: bytes.Clone(body), sw: sw})
		pending = nil
	}
	return out
}

// session drives the real drivers over a virtual card the way the agent
// does (identify and open, certificates, PIN status, a wrong PIN, a
// signature) and then changes and unblocks the PIN.
func session(card vcard.Card, pin, puk string) (*recorder, error) {
	rec := &recorder{card: card}
	sess := &pcsc.LocalSession{T: rec, ReaderName: "seed", CardATR: card.ATR()}
	ctx := context.Background()
	c, _, err := drivers.Open(ctx, zap.NewNop(), sess, drivers.Options{})
	if err != nil {
		return nil, fmt.Errorf("opening virtual card: %w", err)
	}
	defer c.Close()
	if _, err := c.Certificates(ctx); err != nil {
		return nil, err
	}
	if _, err := c.PINStatus(ctx); err != nil {
		return nil, err
	}
	digest := sha256.Sum256([]byte("cardagent fuzz seed"))
	for _, p := range []string{"000000", pin} {
		key, err := c.PrivateKey(pcsc.KeyAuthentication, func() ([]byte, error) { return []byte(p), nil })
		if err != nil {
			return nil, err
		}
		opts := crypto.SignerOpts(crypto.SHA256)
		_, err = key.Sign(rand.Reader, digest[:], opts)
		var auth *pcsc.AuthError
		if p == pin && err != nil || p != pin && !errors.As(err, &auth) {
			return nil, fmt.Errorf("signing with PIN %s: %v", p, err)
		}
	}
	if err := c.ChangePIN(ctx, []byte(pin), []byte("654321")); err != nil {
		return nil, fmt.Errorf("changing PIN: %w", err)
	}
	if err := c.UnblockPIN(ctx, []byte(puk), []byte(pin)); err != nil {
		return nil, fmt.Errorf("unblocking PIN: %w", err)
	}
	return rec, nil
}

func (g *gen) cards(rsaCreds, ecCreds *testpki.CardCreds) error {
	// PIV, RSA and ECDSA, one with gzip-compressed certificates.
	pivCfg := vpiv.NHSConfig(rsaCreds)
	pivCard, err := vpiv.New(pivCfg)
	if err != nil {
		return err
	}
	pivRec, err := session(pivCard, vpiv.DefaultPIN, vpiv.DefaultPUK)
	if err != nil {
		return fmt.Errorf("PIV session: %w", err)
	}
	ecCfg := vpiv.NHSConfig(ecCreds)
	for ref, s := range ecCfg.Slots {
		s.Compress = true
		ecCfg.Slots[ref] = s
	}
	ecCard, err := vpiv.New(ecCfg)
	if err != nil {
		return err
	}
	ecRec, err := session(ecCard, vpiv.DefaultPIN, vpiv.DefaultPUK)
	if err != nil {
		return fmt.Errorf("PIV ECDSA session: %w", err)
	}
	s8Cfg, err := vseries8.NHSConfig(rsaCreds)
	if err != nil {
		return err
	}
	s8Card, err := vseries8.New(s8Cfg)
	if err != nil {
		return err
	}
	s8Rec, err := session(s8Card, string(s8Cfg.PIN), string(s8Cfg.PUK))
	if err != nil {
		return fmt.Errorf("series 8 session: %w", err)
	}

	if err := g.pivObjects(pivRec, ecRec); err != nil {
		return err
	}
	if err := g.series8Files(s8Rec); err != nil {
		return err
	}
	if err := g.directReads(pivCard, s8Card, s8Cfg.AID); err != nil {
		return err
	}
	if err := g.identify(pivCard, s8Card); err != nil {
		return err
	}
	// FuzzOpen (pcsc/drivers): the whole answer sequence of a session.
	for _, s := range []struct {
		name string
		atr  byte
		rec  *recorder
	}{{"piv-rsa", 0, pivRec}, {"piv-ecdsa-gzip", 0, ecRec}, {"series8", 1, s8Rec}} {
		var script []byte
		for _, a := range s.rec.log {
			script = binary.BigEndian.AppendUint16(script, uint16(len(a.resp)))
			script = append(script, a.resp...)
		}
		if err := g.seed("pcsc/drivers", "FuzzOpen", s.name, s.atr, script); err != nil {
			return err
		}
	}
	// FuzzFormatCommand (pcsc) and FuzzTransmit (vpiv): the commands sent.
	seen := map[string]bool{}
	for _, r := range []*recorder{pivRec, ecRec, s8Rec} {
		for _, a := range r.log {
			key := hex.EncodeToString(a.cmd[:min(2, len(a.cmd))]) + strconv.Itoa(min(len(a.cmd), 6))
			if seen[key] {
				continue
			}
			seen[key] = true
			name := fmt.Sprintf("%02x%02x-%d", a.cmd[0], a.cmd[1], len(a.cmd))
			if err := g.seed("pcsc", "FuzzFormatCommand", name, a.cmd); err != nil {
				return err
			}
		}
	}
	for _, s := range []struct {
		name string
		rec  *recorder
	}{{"rsa-session", pivRec}, {"ecdsa-session", ecRec}} {
		var script []byte
		n := 0
		for _, a := range s.rec.log {
			if len(a.cmd) > 255 || n == 32 {
				continue
			}
			script = append(script, byte(len(a.cmd)))
			script = append(script, a.cmd...)
			n++
		}
		if err := g.seed("pcsc/vcard/vpiv", "FuzzTransmit", s.name, script); err != nil {
			return err
		}
	}
	return nil
}

var pivAID = []byte{0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}

func (g *gen) pivObjects(recs ...*recorder) error {
	tlvs := 0
	for ri, r := range recs {
		kind := []string{"rsa", "ecdsa-gzip"}[ri]
		for _, x := range exchanges(r.log) {
			if x.sw != 0x9000 {
				continue
			}
			var target, name string
			switch {
			case x.ins == 0xA4 && bytes.Equal(x.data, pivAID):
				target, name = "FuzzParseAPT", "apt"
			case x.ins == 0xCB && len(x.data) == 5 && x.data[0] == 0x5C:
				switch tag := uint32(x.data[2])<<16 | uint32(x.data[3])<<8 | uint32(x.data[4]); tag {
				case 0x5FC102:
					target, name = "FuzzParseCHUID", "chuid"
				case 0x5FC105, 0x5FC10A, 0x5FC10B, 0x5FC101:
					target, name = "FuzzParseCertContainer", fmt.Sprintf("cert-%06x", tag)
				case 0x5FC10C:
					target, name = "FuzzParseKeyHistory", "key-history"
				default:
					target, name = "", fmt.Sprintf("object-%06x", tag)
				}
			case x.ins == 0x87 && len(x.resp) > 0:
				target, name = "FuzzParseAuthResponse", "general-authenticate"
			default:
				continue
			}
			if target != "" {
				if err := g.seed("pcsc/piv", target, kind+"-"+name, x.resp); err != nil {
					return err
				}
			}
			if err := g.seed("pcsc", "FuzzParseTLV", "piv-"+kind+"-"+name, x.resp); err != nil {
				return err
			}
			tlvs++
			// FuzzExchange (pcsc): the same answer as a card sends it in
			// pieces of 200 bytes, each but the last with 61xx.
			if len(x.resp) > 200 && tlvs%3 == 0 {
				var script []byte
				for rest := x.resp; len(rest) > 0; {
					n := min(200, len(rest))
					sw := []byte{0x90, 0x00}
					if n < len(rest) {
						sw = []byte{0x61, byte(min(200, len(rest)-n))}
					}
					script = append(script, byte(n+2))
					script = append(script, rest[:n]...)
					script = append(script, sw...)
					rest = rest[n:]
				}
				if err := g.seed("pcsc", "FuzzExchange", "chained-"+kind+"-"+name, byte(2), script); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (g *gen) series8Files(r *recorder) error {
	var selected uint16
	files := map[uint16][]byte{}
	var records [][]byte
	var order []uint16
	n := 0
	for _, x := range exchanges(r.log) {
		switch {
		case x.ins == 0xA4 && len(x.data) == 2:
			selected = binary.BigEndian.Uint16(x.data)
			if len(x.resp) > 0 && x.sw == 0x9000 {
				n++
				if err := g.seed("pcsc/series8", "FuzzParseFCI", fmt.Sprintf("fci-%04x", selected), x.resp); err != nil {
					return err
				}
				if n%4 == 1 {
					if err := g.seed("pcsc", "FuzzParseTLV", fmt.Sprintf("series8-fci-%04x", selected), x.resp); err != nil {
						return err
					}
				}
			}
		case (x.ins == 0xB0 || x.ins == 0xB4) && x.sw == 0x9000:
			if _, ok := files[selected]; !ok {
				order = append(order, selected)
			}
			files[selected] = append(files[selected], x.resp...)
		case x.ins == 0xB2 && x.sw == 0x9000 && selected == 0x3000:
			records = append(records, x.resp)
		}
	}
	for i, rec := range records {
		if err := g.seed("pcsc/series8", "FuzzParseContainer", fmt.Sprintf("container-%d", i+1), rec); err != nil {
			return err
		}
	}
	for _, fid := range order {
		b := files[fid]
		switch {
		case fid == 0x4000 || fid == 0x5000:
			if err := g.seed("pcsc/series8", "FuzzParseObjectList", fmt.Sprintf("list-%04x", fid), b); err != nil {
				return err
			}
		case fid&0x0100 != 0:
			if err := g.seed("pcsc/series8", "FuzzParseInfo", fmt.Sprintf("info-%04x", fid), b); err != nil {
				return err
			}
		case len(b) > 4 && b[0] == 0x30:
			if err := g.seed("pcsc/series8", "FuzzDERLength", fmt.Sprintf("cert-%04x", fid), b[:min(len(b), 8)]); err != nil {
				return err
			}
		}
	}
	if len(records) == 0 && len(order) == 0 {
		return errors.New("series 8 session read no files")
	}
	return nil
}

// directReads fetches what the drivers' sessions did not read: the PIV key
// history and discovery objects, and the series 8 object lists and info files
// (the driver found its keys through the containers file).
func (g *gen) directReads(piv, s8 vcard.Card, s8AID []byte) error {
	piv.Reset()
	if _, err := pcsc.Exchange(piv, pcsc.Command{INS: 0xA4, P1: 0x04, Data: pivAID, Le: 0}); err != nil {
		return err
	}
	for _, obj := range []struct {
		target, name string
		tag          []byte
	}{{"FuzzParseKeyHistory", "key-history", []byte{0x5F, 0xC1, 0x0C}}, {"", "discovery", []byte{0x7E}}} {
		resp, err := pcsc.Exchange(piv, pcsc.Command{INS: 0xCB, P1: 0x3F, P2: 0xFF, Data: pcsc.AppendTLV(nil, 0x5C, obj.tag), Le: 0})
		if err == nil && resp.SW == 0x6A82 && obj.target == "FuzzParseKeyHistory" {
			// The NHS card profile has none: the object as SP 800-73-4
			// part 1, 3.3.2 lays it out, for a card with two retired keys on card.
			body := pcsc.AppendTLV(nil, 0xC1, []byte{2})
			body = pcsc.AppendTLV(body, 0xC2, []byte{0})
			body = pcsc.AppendTLV(body, 0xFE, nil)
			resp.Data, resp.SW = pcsc.AppendTLV(nil, 0x53, body), 0x9000
		}
		if err != nil || resp.SW != 0x9000 {
			return fmt.Errorf("PIV GET DATA %X: %v %04X", obj.tag, err, resp.SW)
		}
		if obj.target != "" {
			if err := g.seed("pcsc/piv", obj.target, obj.name, resp.Data); err != nil {
				return err
			}
		}
		if err := g.seed("pcsc", "FuzzParseTLV", "piv-"+obj.name, resp.Data); err != nil {
			return err
		}
	}

	s8.Reset()
	if s8AID == nil {
		s8AID = vseries8.AIDAuthentIC
	}
	if resp, err := pcsc.Exchange(s8, pcsc.Command{INS: 0xA4, P1: 0x04, P2: 0x0C, Data: s8AID, Le: -1}); err != nil || resp.SW != 0x9000 {
		return fmt.Errorf("series 8 SELECT AID: %v %04X", err, resp.SW)
	}
	read := func(fid uint16) ([]byte, error) {
		resp, err := pcsc.Exchange(s8, pcsc.Command{INS: 0xA4, Data: []byte{byte(fid >> 8), byte(fid)}, Le: 0})
		if err != nil || resp.SW != 0x9000 {
			return nil, fmt.Errorf("series 8 SELECT %04X: %v %04X", fid, err, resp.SW)
		}
		objs, err := pcsc.ParseTLV(resp.Data)
		if err == nil && len(objs) == 1 {
			objs, err = pcsc.ParseTLV(objs[0].Value)
		}
		if err != nil {
			return nil, err
		}
		sz, ok := pcsc.FindTLV(objs, 0x80)
		if !ok {
			return nil, nil // a DF
		}
		n := 0
		for _, c := range sz {
			n = n<<8 | int(c)
		}
		var out []byte
		for len(out) < n {
			resp, err := pcsc.Exchange(s8, pcsc.Command{INS: 0xB0, P1: byte(len(out) >> 8), P2: byte(len(out)), Le: min(256, n-len(out))})
			if err != nil || resp.SW != 0x9000 || len(resp.Data) == 0 {
				return nil, fmt.Errorf("series 8 READ BINARY %04X: %v %04X", fid, err, resp.SW)
			}
			out = append(out, resp.Data...)
		}
		return out, nil
	}
	for _, list := range []struct{ fid, df uint16 }{{0x4000, 0x9001}, {0x5000, 0x9002}} {
		for _, fid := range []uint16{0x3F00, 0x5011} {
			if _, err := read(fid); err != nil {
				return err
			}
		}
		b, err := read(list.fid)
		if err != nil {
			return err
		}
		if err := g.seed("pcsc/series8", "FuzzParseObjectList", fmt.Sprintf("list-%04x", list.fid), b); err != nil {
			return err
		}
		if _, err := read(list.df); err != nil {
			return err
		}
		for i := 0; i+5 <= len(b); i += 5 {
			if b[i] != 0xFF {
				continue
			}
			fid := uint16(b[i+1])<<8 | uint16(b[i+2])
			info, err := read(fid | 0x0100)
			if err != nil {
				continue // not every object has an info file
			}
			if err := g.seed("pcsc/series8", "FuzzParseInfo", fmt.Sprintf("info-%04x", fid|0x0100), info); err != nil {
				return err
			}
		}
	}
	return nil
}

// identify records the answers to pcsc.Identify for FuzzIdentify, whose
// script is a length byte (mod 24) and the answer: an answer longer than
// 23 bytes is given as its status word alone.
func (g *gen) identify(cards ...vcard.Card) error {
	names := []string{"piv", "series8"}
	for i, c := range cards {
		c.Reset()
		rec := &recorder{card: c}
		if _, err := pcsc.Identify(context.Background(), &pcsc.LocalSession{T: rec, ReaderName: "seed", CardATR: c.ATR()}); err != nil {
			return err
		}
		var script []byte
		for _, a := range rec.log {
			resp := a.resp
			if len(resp) > 23 {
				resp = resp[len(resp)-2:]
			}
			script = append(script, byte(len(resp)))
			script = append(script, resp...)
		}
		if err := g.seed("pcsc", "FuzzIdentify", names[i], script); err != nil {
			return err
		}
	}
	return nil
}

func (g *gen) certificates(pki *testpki.PKI, creds ...*testpki.CardCreds) error {
	certs := map[string]*x509.Certificate{}
	for i, c := range creds {
		kind := []string{"rsa", "ecdsa"}[i]
		certs["auth-"+kind] = c.AuthCert
		certs["sign-"+kind] = c.SignCert
	}
	for i, c := range pki.Chain() {
		certs[fmt.Sprintf("ca-%d", i)] = c
	}
	for _, name := range sortedKeys(certs) {
		c := certs[name]
		if err := g.seed("agent/certinfo", "FuzzSummarise", name, c.Raw); err != nil {
			return err
		}
		if err := g.seed("agent/certinfo", "FuzzHolderName", name, c.Subject.CommonName); err != nil {
			return err
		}
	}
	// FuzzClassify (pcsc/p11): certificate objects as a PKCS#11 module
	// lists them (OpenSC's PIV labels, AWP-style labels).
	objs := []struct {
		name    string
		der     []byte
		label   string
		id      []byte
		decrypt bool
		label2  string
		id2     []byte
	}{
		{"opensc-piv", creds[0].AuthCert.Raw, "Certificate for PIV Authentication", []byte{0x01}, true, "Certificate for Digital Signature", []byte{0x02}},
		{"awp", creds[0].SignCert.Raw, "Authentication", creds[0].AuthCert.SubjectKeyId, false, "Signature", creds[0].SignCert.SubjectKeyId},
		{"opensc-piv-ecdsa", creds[1].AuthCert.Raw, "Certificate for PIV Authentication", []byte{0x01}, false, "", []byte{}},
	}
	for _, o := range objs {
		if err := g.seed("pcsc/p11", "FuzzClassify", o.name, o.der, o.label, o.id, o.decrypt, o.label2, o.id2); err != nil {
			return err
		}
	}
	// FuzzRawToDER (pcsc/p11): ECDSA signatures as PKCS#11 returns them (r || s).
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		key, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			return err
		}
		d := sha256.Sum256([]byte("seed"))
		der, err := ecdsa.SignASN1(rand.Reader, key, d[:])
		if err != nil {
			return err
		}
		var sig struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(der, &sig); err != nil {
			return err
		}
		size := (curve.Params().BitSize + 7) / 8
		raw := append(sig.R.FillBytes(make([]byte, size)), sig.S.FillBytes(make([]byte, size))...)
		if err := g.seed("pcsc/p11", "FuzzRawToDER", curve.Params().Name, raw, size); err != nil {
			return err
		}
	}
	return nil
}

const seedOrigin = "https://signin.example.nhs.uk"

func (g *gen) tokens(creds ...*testpki.CardCreds) error {
	store := token.NewMemoryStore()
	v := &token.Verifier{Challenges: store}
	for i, c := range creds {
		alg, opts := token.RS256, crypto.SignerOpts(crypto.SHA256)
		if _, ok := c.AuthKey.Public().(*ecdsa.PublicKey); ok {
			alg = token.ES256
		}
		ch, err := v.NewChallenge()
		if err != nil {
			return err
		}
		digest, err := token.Digest(alg, seedOrigin, ch)
		if err != nil {
			return err
		}
		sig, err := c.AuthKey.Sign(rand.Reader, digest, opts)
		if err != nil {
			return err
		}
		if pub, ok := c.AuthKey.Public().(*ecdsa.PublicKey); ok {
			if sig, err = token.ECDSARaw(pub, sig); err != nil { // JOSE r||s
				return err
			}
		}
		tok := token.Token{
			Format:      token.Format,
			Algorithm:   alg,
			Certificate: base64.RawURLEncoding.EncodeToString(c.AuthCert.Raw),
			Origin:      seedOrigin,
			Signature:   base64.RawURLEncoding.EncodeToString(sig),
		}
		b, err := json.Marshal(tok)
		if err != nil {
			return err
		}
		if err := g.seed("agent/token", "FuzzVerify", []string{"rs256", "es256"}[i], b); err != nil {
			return err
		}
	}
	return nil
}

// requests are the messages the JS client (web/cardagent-client) sends,
// and ones the agent must refuse.
func (g *gen) requests() error {
	ch, err := (&token.Verifier{Challenges: token.NewMemoryStore()}).NewChallenge()
	if err != nil {
		return err
	}
	msgs := map[string]string{
		"hello":         `{"id":1,"type":"hello","protocol":1}`,
		"status":        `{"id":2,"type":"status"}`,
		"certificates":  `{"id":3,"type":"certificates"}`,
		"authenticate":  `{"id":4,"type":"authenticate","challenge":"` + ch + `"}`,
		"string-id":     `{"id":"c-5","type":"authenticate","challenge":"` + ch + `"}`,
		"refused-pin":   `{"id":6,"type":"authenticate","challenge":"` + ch + `","pin":"123456"}`,
		"refused-hash":  `{"id":7,"type":"authenticate","digest":"AAAA","hash":"SHA-256"}`,
		"refused-orig":  `{"id":8,"type":"status","origin":"https://evil.example"}`,
		"unknown-type":  `{"id":9,"type":"sign","data":"AA"}`,
		"duplicate-key": `{"id":10,"type":"status","type":"hello"}`,
	}
	for _, name := range sortedKeys(msgs) {
		if err := g.seed("agent/api", "FuzzParseRequest", name, []byte(msgs[name])); err != nil {
			return err
		}
	}
	return nil
}

// procNet seeds the /proc/net/tcp parser with this machine's tables, and
// the Windows TCP table parser with the same connections in
// GetExtendedTcpTable's layout.
func (g *gen) procNet() error {
	type conn struct{ local, remote netip.AddrPort }
	var v4, v6 []conn
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("reading %s (Linux only): %w", f, err)
		}
		lines := strings.SplitAfter(string(b), "\n")
		if len(lines) > 9 {
			lines = lines[:9]
		}
		if err := g.seed("agent/api", "FuzzParseProcNetTCP", filepath.Base(f), strings.Join(lines, "")); err != nil {
			return err
		}
		for _, l := range lines[1:] {
			fs := strings.Fields(l)
			if len(fs) < 3 {
				continue
			}
			la, ok1 := procAddr(fs[1])
			ra, ok2 := procAddr(fs[2])
			if !ok1 || !ok2 {
				continue
			}
			if la.Addr().Is4() {
				v4 = append(v4, conn{la, ra})
			} else {
				v6 = append(v6, conn{la, ra})
			}
		}
	}
	for _, set := range []struct {
		v6    bool
		conns []conn
	}{{false, v4}, {true, v6}} {
		if len(set.conns) == 0 {
			continue
		}
		le := binary.LittleEndian
		buf := le.AppendUint32(nil, uint32(len(set.conns)))
		port := func(p uint16) []byte { return []byte{byte(p >> 8), byte(p), 0, 0} }
		for i, c := range set.conns {
			if set.v6 {
				la, ra := c.local.Addr().As16(), c.remote.Addr().As16()
				buf = append(buf, la[:]...)
				buf = le.AppendUint32(buf, 0)
				buf = append(buf, port(c.local.Port())...)
				buf = append(buf, ra[:]...)
				buf = le.AppendUint32(buf, 0)
				buf = append(buf, port(c.remote.Port())...)
				buf = le.AppendUint32(buf, 5)
				buf = le.AppendUint32(buf, uint32(1000+i))
			} else {
				la, ra := c.local.Addr().As4(), c.remote.Addr().As4()
				buf = le.AppendUint32(buf, 5)
				buf = append(buf, la[:]...)
				buf = append(buf, port(c.local.Port())...)
				buf = append(buf, ra[:]...)
				buf = append(buf, port(c.remote.Port())...)
				buf = le.AppendUint32(buf, uint32(1000+i))
			}
		}
		if err := g.seed("agent/api", "FuzzParseTCPTable", map[bool]string{false: "tcp4", true: "tcp6"}[set.v6], buf, set.v6); err != nil {
			return err
		}
	}
	return nil
}

// procAddr parses /proc/net/tcp's "0100007F:A8E0" (little-endian words).
func procAddr(s string) (netip.AddrPort, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(h)
	port, perr := strconv.ParseUint(p, 16, 16)
	if err != nil || perr != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	for i := 0; i < len(raw); i += 4 {
		slices.Reverse(raw[i : i+4])
	}
	a, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}

func (g *gen) configs() error {
	tmpl, err := os.ReadFile(filepath.Join(g.root, "installer", "templates", "config", "config.json"))
	if err != nil {
		return err
	}
	docs := map[string][]byte{
		"installer-template": tmpl,
		"environments": []byte(`{
  "environment": "live",
  "environments": {
    "live": {"origins": ["https://signin.example.nhs.uk"], "renewal_url": "https://renew.example.nhs.uk/"},
    "training": {"origins": ["https://training.signin.example.nhs.uk:8443"]},
    "development": {"origins": ["http://localhost:8080", "http://[::1]:8080"]}
  },
  "listen": {"port": 43800, "port_range": 10},
  "prompt": {"backend": "pinentry", "pinentry": "/usr/bin/pinentry-gnome3", "timeout_seconds": 60},
  "pin": {"policy": "cache", "cache_seconds": 300, "min_length": 6, "max_length": 8, "digits_only": true},
  "limits": {"max_connections": 64, "max_message_bytes": 16384, "prompts_per_minute_per_origin": 6},
  "log": {"level": "info", "format": "json"}
}`),
	}
	for _, name := range sortedKeys(docs) {
		if err := g.seed("agent/config", "FuzzParse", name, docs[name]); err != nil {
			return err
		}
	}
	for i, o := range []string{"https://signin.example.nhs.uk", "https://Training.Signin.Example.NHS.uk:443/", "http://[::1]:8080", "http://localhost:8080/", "https://bücher.example"} {
		if err := g.seed("agent/config", "FuzzNormalizeOrigin", fmt.Sprintf("origin-%d", i), o); err != nil {
			return err
		}
	}
	return nil
}

func (g *gen) plists() error {
	for _, f := range []string{"installer/testdata/org.cardagent.agent.plist", "installer/testdata/policy.mobileconfig", "installer/templates/darwin/launchagent.plist"} {
		b, err := os.ReadFile(filepath.Join(g.root, filepath.FromSlash(f)))
		if err != nil {
			return err
		}
		if err := g.seed("agent/config/plist", "FuzzParse", filepath.Base(f), b); err != nil {
			return err
		}
	}
	return nil
}

// assuan records what the scripted pinentry (a real Assuan server, as
// GnuPG's pinentry) writes in one PIN dialog, for each way it can answer.
func (g *gen) assuan() error {
	dir, err := os.MkdirTemp("", "fuzzseeds-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "scripted")
	build := exec.Command("go", "build", "-o", bin, "./testdata/pinentry/scripted")
	build.Dir = g.root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the scripted pinentry: %v\n%s", err, out)
	}
	dialog := "OPTION ttyname=/dev/pts/0\nSETTITLE cardagent: smartcard PIN\nSETDESC Sign in to%0Ahttps://signin.example.nhs.uk\nSETPROMPT PIN:\nSETTIMEOUT 60\nGETINFO version\nGETPIN\nBYE\n"
	for _, action := range []string{"pin", "cancel", "timeout", "error", "garbage", "pin-then-err"} {
		cmd := exec.Command(bin, "-action", action, "-pin", "12%34\n56")
		cmd.Stdin = strings.NewReader(dialog)
		out, _ := cmd.Output() // crash-like actions exit non-zero
		if len(out) == 0 {
			return fmt.Errorf("scripted pinentry %s wrote nothing", action)
		}
		if len(out) > 2048 {
			out = out[:2048]
		}
		if err := g.seed("agent/prompt", "FuzzAssuanReader", action, out); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
