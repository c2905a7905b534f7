package resilience

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/stoker-ml/stoker/queue"
	"github.com/stoker-ml/stoker/queue/queuetest"
)

// ---------------------------------------------------------------------------
// Certificates and keys made for the test

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	otherCA                                              string // a CA that signed nothing here
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, caCert, caDER := makeCA(t, "stoker test CA")
	_, _, otherDER := makeCA(t, "unrelated CA")
	p := pki{
		caFile:     writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER),
		otherCA:    writePEM(t, dir, "other-ca.pem", "CERTIFICATE", otherDER),
		serverCert: filepath.Join(dir, "server.pem"), serverKey: filepath.Join(dir, "server-key.pem"),
		clientCert: filepath.Join(dir, "client.pem"), clientKey: filepath.Join(dir, "client-key.pem"),
	}
	leaf := func(cn string, usage x509.ExtKeyUsage, certFile, keyFile string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
			DNSNames:     []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, dir, filepath.Base(certFile), "CERTIFICATE", der)
		writePEM(t, dir, filepath.Base(keyFile), "EC PRIVATE KEY", kder)
	}
	leaf("127.0.0.1", x509.ExtKeyUsageServerAuth, p.serverCert, p.serverKey)
	leaf("stoker-worker", x509.ExtKeyUsageClientAuth, p.clientCert, p.clientKey)
	return p
}

func makeCA(t *testing.T, cn string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// operator is a JWT operator, an account with JetStream signed by it, and a
// user of that account, as a decentralised-auth deployment has them.
type operator struct {
	claims     *jwt.OperatorClaims
	accountPub string
	accountJWT string
	systemPub  string // the system account, which JetStream needs in operator mode
	systemJWT  string
	creds      []byte // user JWT and seed, as a .creds file
}

func newOperator(t *testing.T) operator {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	okp, err := nkeys.CreateOperator()
	must(err)
	opub, err := okp.PublicKey()
	must(err)
	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "stoker-test"
	ojwt, err := oc.Encode(okp)
	must(err)
	oc, err = jwt.DecodeOperatorClaims(ojwt)
	must(err)

	akp, err := nkeys.CreateAccount()
	must(err)
	apub, err := akp.PublicKey()
	must(err)
	ac := jwt.NewAccountClaims(apub)
	ac.Name = "stoker"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	ajwt, err := ac.Encode(okp)
	must(err)

	skp, err := nkeys.CreateAccount()
	must(err)
	spub, err := skp.PublicKey()
	must(err)
	sc := jwt.NewAccountClaims(spub)
	sc.Name = "SYS"
	sjwt, err := sc.Encode(okp)
	must(err)

	ukp, err := nkeys.CreateUser()
	must(err)
	upub, err := ukp.PublicKey()
	must(err)
	useed, err := ukp.Seed()
	must(err)
	uc := jwt.NewUserClaims(upub)
	uc.Name = "worker"
	ujwt, err := uc.Encode(akp)
	must(err)
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	must(err)
	return operator{claims: oc, accountPub: apub, accountJWT: ajwt, systemPub: spub, systemJWT: sjwt, creds: creds}
}

// ---------------------------------------------------------------------------

// Each way queue.Connect authenticates works against a server configured
// for it, and fails without the right secret.
func TestConnectWithEveryAuthMethod(t *testing.T) {
	p := newPKI(t)
	op := newOperator(t)
	nkp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	npub, _ := nkp.PublicKey()
	nseed, _ := nkp.Seed()
	otherKP, _ := nkeys.CreateUser()
	otherSeed, _ := otherKP.Seed()
	seedFile := writeFile(t, "worker.nk", nseed)
	otherSeedFile := writeFile(t, "other.nk", otherSeed)
	credsFile := writeFile(t, "worker.creds", op.creds)
	tlsServer := func(verify bool) queuetest.ServerOption {
		return func(o *server.Options) {
			cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: p.serverCert, KeyFile: p.serverKey, CaFile: p.caFile, Verify: verify})
			if err != nil {
				t.Fatal(err)
			}
			o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = cfg, true, verify, 5
		}
	}

	cases := []struct {
		name   string
		server queuetest.ServerOption
		scheme string
		good   queue.ConnOptions
		bad    []queue.ConnOptions // each must be refused
	}{
		{
			name:   "user and password",
			server: func(o *server.Options) { o.Username, o.Password = "worker", "s3cret-pw" },
			good:   queue.ConnOptions{User: "worker", Password: "s3cret-pw"},
			bad:    []queue.ConnOptions{{}, {User: "worker", Password: "wrong"}},
		},
		{
			name:   "token",
			server: func(o *server.Options) { o.Authorization = "tok-12345" },
			good:   queue.ConnOptions{Token: "tok-12345"},
			bad:    []queue.ConnOptions{{}, {Token: "tok-wrong"}},
		},
		{
			name:   "nkey",
			server: func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: npub}} },
			good:   queue.ConnOptions{NKey: seedFile},
			bad:    []queue.ConnOptions{{}, {NKey: otherSeedFile}},
		},
		{
			name: "credentials file",
			server: func(o *server.Options) {
				o.TrustedOperators = []*jwt.OperatorClaims{op.claims}
				res := &server.MemAccResolver{}
				for pub, j := range map[string]string{op.accountPub: op.accountJWT, op.systemPub: op.systemJWT} {
					if err := res.Store(pub, j); err != nil {
						t.Fatal(err)
					}
				}
				o.AccountResolver, o.SystemAccount = res, op.systemPub
			},
			good: queue.ConnOptions{Creds: credsFile},
			bad:  []queue.ConnOptions{{}, {User: "worker", Password: "x"}},
		},
		{
			name:   "tls",
			server: tlsServer(false),
			scheme: "tls",
			good:   queue.ConnOptions{TLSCA: p.caFile},
			bad:    []queue.ConnOptions{{}, {TLSCA: p.otherCA}},
		},
		{
			name:   "tls with client certificate",
			server: tlsServer(true),
			scheme: "tls",
			good:   queue.ConnOptions{TLSCA: p.caFile, TLSCert: p.clientCert, TLSKey: p.clientKey},
			bad:    []queue.ConnOptions{{TLSCA: p.caFile}, {TLSCA: p.otherCA, TLSCert: p.clientCert, TLSKey: p.clientKey}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := queuetest.RunServer(t, tc.server)
			url := srv.ClientURL()
			if tc.scheme != "" {
				url = strings.Replace(url, "nats://", tc.scheme+"://", 1)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			o := tc.good
			o.URL, o.MaxReconnects = url, 1
			c, err := queue.Connect(ctx, o)
			if err != nil {
				t.Fatalf("connect with the right secret: %v", err)
			}
			defer c.Close(ctx)
			// A JetStream round trip proves the session is authorised.
			if _, err := c.EnsureStream(ctx, queue.StreamSpec{Name: "AUTH", Subjects: []string{"auth.>"}, Memory: true}); err != nil {
				t.Errorf("JetStream after connecting: %v", err)
			}
			if _, err := c.Publish(ctx, "auth.ok", []byte("x"), nil); err != nil {
				t.Errorf("publish after connecting: %v", err)
			}
			// The same secrets given to `stoker serve` as flags.
			var flags []string
			for _, f := range []struct{ flag, v string }{
				{"--user", tc.good.User}, {"--password", tc.good.Password}, {"--token", tc.good.Token},
				{"--nkey", tc.good.NKey}, {"--creds", tc.good.Creds},
				{"--tlsca", tc.good.TLSCA}, {"--tlscert", tc.good.TLSCert}, {"--tlskey", tc.good.TLSKey},
			} {
				if f.v != "" {
					flags = append(flags, f.flag, f.v)
				}
			}
			w := startStoker(t, "worker", writeConfig(t, url, nil, textPipeline()), flags...)
			w.waitReady(30 * time.Second)
			for i, b := range tc.bad {
				b.URL, b.MaxReconnects = url, 1
				bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Second)
				bc, err := queue.Connect(bctx, b)
				bcancel()
				if err == nil {
					bc.Close(context.Background())
					t.Errorf("wrong secret %d was accepted", i)
				}
			}
		})
	}
}

// The embedded server refuses to listen beyond loopback without
// authentication, listens on loopback by default, and beyond loopback with
// a password refuses clients that lack it.
func TestEmbeddedServerListenRule(t *testing.T) {
	port := func() string { return fmt.Sprint(queuetest.FreePorts(t, 1)[0]) }
	cfg := writeConfig(t, "", nil, textPipeline())

	t.Run("non-loopback without auth is refused", func(t *testing.T) {
		w := startStoker(t, "open", cfg, "--listen", "0.0.0.0:"+port(), "--data-dir", t.TempDir())
		if code := w.wait(30 * time.Second); code == 0 {
			t.Fatalf("stoker served on 0.0.0.0 without authentication")
		}
		if logs := string(w.logs()); !strings.Contains(logs, "non-loopback") {
			t.Errorf("the error does not say why: %s", logs)
		}
	})
	t.Run("loopback by default", func(t *testing.T) {
		w := startStoker(t, "default", cfg, "--listen", "127.0.0.1:"+port(), "--data-dir", t.TempDir())
		w.waitReady(30 * time.Second)
		for _, r := range w.logRecords() {
			if u, ok := r["url"].(string); ok && r["msg"] != nil && strings.Contains(fmt.Sprint(r["msg"]), "embedded") {
				if !strings.Contains(u, "127.0.0.1") {
					t.Errorf("embedded server URL %q is not on loopback", u)
				}
			}
		}
		w.signal(syscall.SIGTERM)
		if code := w.wait(30 * time.Second); code != 0 {
			t.Errorf("exit %d after SIGTERM", code)
		}
	})
	t.Run("non-loopback with a password", func(t *testing.T) {
		pt := port()
		w := startStoker(t, "protected", cfg, "--listen", "0.0.0.0:"+pt, "--data-dir", t.TempDir(), "--user", "stoker", "--password", "pw-0451")
		w.waitReady(30 * time.Second)
		url := "nats://127.0.0.1:" + pt
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if c, err := queue.Connect(ctx, queue.ConnOptions{URL: url, MaxReconnects: 1}); err == nil {
			c.Close(ctx)
			t.Errorf("a client without the password was accepted")
		}
		c, err := queue.Connect(ctx, queue.ConnOptions{URL: url, User: "stoker", Password: "pw-0451", MaxReconnects: 1})
		if err != nil {
			t.Fatalf("a client with the password was refused: %v", err)
		}
		c.Close(ctx)
	})
}

// A worker that authenticates with a password and processes distinctive
// payloads (good ones and bad ones that are dead-lettered with an error)
// through a broker restart writes neither the password nor any payload to
// its logs or its metrics.
func TestNoSecretsOrPayloadsInLogsOrMetrics(t *testing.T) {
	const password = "pw-Zq81-never-log-me"
	const marker = "PAYLOAD-MARKER-c0ffee-1337"
	b := startBroker(t, func(o *server.Options) { o.Username, o.Password = "worker", password })
	c := client(t, b.url(), func(o *queue.ConnOptions) { o.User, o.Password = "worker", password })
	// The password in the URL too, where it is easiest to leak.
	url := strings.Replace(b.url(), "nats://", "nats://worker:"+password+"@", 1)
	cfg := writeConfig(t, url, nil, textPipeline("ack_wait", "2s"), imagePipeline("ack_wait", "2s"))
	w := startStoker(t, "worker", cfg)
	w.waitReady(30 * time.Second)

	items := []item{
		{subject: "raw.text.s", id: "good-text", data: []byte("an ordinary " + marker + " sentence")},
		{subject: "raw.text.s", id: "bad-utf8", data: []byte("bad \xff " + marker)},
		{subject: "raw.image.s", id: "not-an-image", data: []byte("GIF89" + marker)},
		{subject: "raw.image.s", id: "svg", data: []byte(`<svg xmlns="http://www.w3.org/2000/svg">` + marker + `</svg>`)},
		{subject: "raw.image.s", id: "truncated-png", data: append([]byte("\x89PNG\r\n\x1a\n"), marker...)},
	}
	publishAll(t, c, items)
	tt, ti := newTally(t, c, "text"), newTally(t, c, "image")
	tt.waitAll(30*time.Second, []string{"good-text", "bad-utf8"})
	ti.waitAll(30*time.Second, []string{"not-an-image", "svg", "truncated-png"})

	// A broker restart makes the client log disconnections and URLs.
	b.stop()
	queuetest.WaitFor(t, 30*time.Second, func() error {
		if w.countLog("nats disconnected") == 0 {
			return fmt.Errorf("the worker has not noticed the server is gone")
		}
		return nil
	})
	b.restart()
	queuetest.WaitFor(t, 30*time.Second, func() error {
		if w.countLog("nats reconnected") == 0 {
			return fmt.Errorf("the worker has not reconnected")
		}
		return nil
	})
	metrics, err := w.scrape()
	if err != nil {
		t.Fatal(err)
	}
	w.signal(syscall.SIGTERM)
	w.wait(30 * time.Second)
	logs := string(w.logs())
	if w.countLog("item dead-lettered") == 0 {
		t.Fatalf("no dead letter was logged: the test logged nothing worth checking")
	}
	forbidden := map[string]string{
		"password":        password,
		"payload":         marker,
		"payload (hex)":   hex.EncodeToString([]byte(marker))[:24],
		"payload (% x)":   fmt.Sprintf("% x", marker[:8]),
		"payload (bytes)": fmt.Sprintf("%v", []byte(marker[:6])),
	}
	for what, s := range forbidden {
		if strings.Contains(logs, s) {
			t.Errorf("the logs contain the %s (%q)", what, s)
		}
		if strings.Contains(metrics, s) {
			t.Errorf("the metrics contain the %s (%q)", what, s)
		}
	}
	t.Logf("checked %d bytes of logs and %d bytes of metrics", len(logs), len(metrics))
}

// An item cannot steer where its output goes: whatever its reply subject,
// headers or subject, its tensor lands on the configured output subject
// and its dead letter on the configured dead-letter subject, and stoker
// publishes on no other subject.
func TestItemCannotSteerItsOutput(t *testing.T) {
	b := startBroker(t)
	c := client(t, b.url())
	ensureStreams(t, c, 1, "text")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.EnsureStream(ctx, queue.StreamSpec{Name: "ELSEWHERE", Subjects: []string{"evil.>", "tensors.evil"}}); err != nil {
		t.Fatal(err)
	}

	// Every subject anything is published on, as the server routes it.
	var mu sync.Mutex
	seen := map[string]int{}
	spy, err := nats.Connect(b.url())
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	if _, err := spy.Subscribe(">", func(m *nats.Msg) {
		mu.Lock()
		seen[m.Subject]++
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}

	cfg := writeConfig(t, b.url(), nil, textPipeline())
	w := startStoker(t, "worker", cfg)
	w.waitReady(30 * time.Second)

	steer := nats.Header{
		"Stoker-Output":      []string{"evil.out"},
		"Stoker-Pipeline":    []string{"evil"},
		"Reply-To":           []string{"evil.reply"},
		"Stoker-Item-Id":     []string{"evil-id"},
		"Stoker-Subject":     []string{"evil.subject"},
		"Stoker-Dead-Letter": []string{"evil.dlq"},
	}
	var items []item
	for i, data := range [][]byte{[]byte("a fine sentence"), []byte("bad \xff utf8")} {
		for j, subj := range []string{"raw.text.steer", "raw.text.tensors.evil", "raw.text.evil.out"} {
			items = append(items, item{subject: subj, id: fmt.Sprintf("steer-%d-%d", i, j), data: data, hdr: steer})
		}
	}
	// The same through a raw publish with a reply subject set.
	for i, data := range [][]byte{[]byte("another fine sentence"), []byte("bad \xfe")} {
		msg := &nats.Msg{Subject: "raw.text.steer", Reply: "tensors.evil", Data: data, Header: nats.Header{}}
		for k, v := range steer {
			msg.Header[k] = v
		}
		msg.Header.Set(nats.MsgIdHdr, fmt.Sprintf("reply-%d", i))
		if _, err := c.JetStream().PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
		items = append(items, item{id: fmt.Sprintf("reply-%d", i)}) // published above
	}
	var plain []item
	for _, it := range items {
		if it.subject != "" {
			plain = append(plain, it)
		}
	}
	publishAll(t, c, plain)

	ty := newTally(t, c, "text")
	ty.waitAll(30*time.Second, ids(items))
	for _, it := range items {
		if ty.rows[it.id]+ty.dead[it.id] != 1 {
			t.Errorf("%s: %d tensors and %d dead letters on the configured subjects, want one", it.id, ty.rows[it.id], ty.dead[it.id])
		}
		if h, ok := ty.deadHdr[it.id]; ok && h.Get("Stoker-Item-Id") != it.id {
			t.Errorf("%s: dead letter names item %q", it.id, h.Get("Stoker-Item-Id"))
		}
	}
	st, err := c.JetStream().Stream(ctx, "ELSEWHERE")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d messages reached evil.> / tensors.evil", info.State.Msgs)
	}
	mu.Lock()
	defer mu.Unlock()
	for subj, n := range seen {
		switch {
		case strings.HasPrefix(subj, "raw.text."), subj == "tensors.text", subj == "dlq.text",
			strings.HasPrefix(subj, "$JS."), strings.HasPrefix(subj, "_INBOX."), strings.HasPrefix(subj, "$SYS."):
		default:
			t.Errorf("%d messages published on %q", n, subj)
		}
	}
}
