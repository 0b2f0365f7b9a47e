package monitoring

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"gopkg.in/yaml.v3"

	"github.com/keyraft/keyraft/internal/server"
	"github.com/keyraft/keyraft/store/mem"
)

// failingStore fails key creation on demand, so that the node answers a
// 5xx and serves the server-error counter too.
type failingStore struct {
	*mem.Store
	fail atomic.Bool
}

func (s *failingStore) Create(ctx context.Context, name string, value []byte) error {
	if s.fail.Load() {
		return errors.New("monitoring test: keystore write refused")
	}
	return s.Store.Create(ctx, name, value)
}

// CreateVersion fails like Create: the node creates keys through it.
func (s *failingStore) CreateVersion(ctx context.Context, name string, value []byte) (string, error) {
	if s.fail.Load() {
		return "", errors.New("monitoring test: keystore write refused")
	}
	return s.Store.CreateVersion(ctx, name, value)
}

// servedMetrics starts a one-node cluster in-process, sends it requests
// that succeed, fail with 4xx and fail with 5xx, and returns the metric
// families /v1/metrics then serves, by name, with their types.
func servedMetrics(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	cfg, apiKey, err := server.DevConfig(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st := &failingStore{Store: mem.New()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.Start(ctx, cfg, server.Options{Logger: hclog.NewNullLogger(), AuditOut: io.Discard, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })

	cert, err := apiKey.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	pemCert, err := os.ReadFile(filepath.Join(dir, "server.cert"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemCert)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "localhost"},
	}}
	defer c.CloseIdleConnections()
	base := "https://" + srv.Addr().String()
	do := func(method, path string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	if code, body := do("GET", "/v1/status"); code != 200 {
		t.Fatalf("status: %d %s", code, body)
	}
	if code, body := do("POST", "/v1/key/create/served"); code != 200 {
		t.Fatalf("key create: %d %s", code, body)
	}
	if code, _ := do("GET", "/v1/key/describe/no-such-key"); code != 404 {
		t.Fatalf("describe of a missing key: %d, want 404", code)
	}
	st.fail.Store(true)
	if code, body := do("POST", "/v1/key/create/refused"); code < 500 {
		t.Fatalf("key create with a failing keystore: %d %s, want a 5xx", code, body)
	}
	st.fail.Store(false)

	code, body := do("GET", "/v1/metrics")
	if code != 200 {
		t.Fatalf("metrics: %d %s", code, body)
	}
	types := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
		}
	}
	return types
}

// exprMetrics returns the metric names an expression uses: every
// identifier with Keyraft's or KES's prefix outside string literals, and
// the regular expressions of __name__ matchers.
func exprMetrics(expr string) (names, nameRegexps []string) {
	for _, m := range regexp.MustCompile(`__name__\s*=~\s*"([^"]*)"`).FindAllStringSubmatch(expr, -1) {
		nameRegexps = append(nameRegexps, m[1])
	}
	unquoted := regexp.MustCompile(`"(\\.|[^"\\])*"`).ReplaceAllString(expr, `""`)
	for _, id := range regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`).FindAllString(unquoted, -1) {
		if strings.HasPrefix(id, "kes_") || strings.HasPrefix(id, "keyraft_") || id == "up" {
			names = append(names, id)
		}
	}
	return names, nameRegexps
}

// checkExpr fails unless every metric expr uses is served (a histogram's
// _bucket, _sum and _count series included) and it uses at least one.
func checkExpr(t *testing.T, where, expr string, served map[string]string, allowUp bool) {
	t.Helper()
	names, res := exprMetrics(expr)
	if len(names) == 0 && len(res) == 0 {
		t.Errorf("%s: uses no Keyraft metric: %s", where, expr)
	}
	for _, n := range names {
		if n == "up" {
			if !allowUp {
				t.Errorf("%s: uses up, which only Prometheus has", where)
			}
			continue
		}
		if _, ok := served[n]; ok {
			continue
		}
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
		if served[base] == "histogram" {
			continue
		}
		t.Errorf("%s: metric %s is not served by Keyraft", where, n)
	}
	for _, re := range res {
		r, err := regexp.Compile("^(?:" + re + ")$")
		if err != nil {
			t.Errorf("%s: __name__ regexp %q: %v", where, re, err)
			continue
		}
		// Every alternative must name a served metric.
		for _, alt := range regexp.MustCompile(`\(([^()]*)\)`).FindAllStringSubmatch(re, -1) {
			prefix := re[:strings.Index(re, "(")]
			for _, a := range strings.Split(alt[1], "|") {
				if _, ok := served[prefix+a]; !ok {
					t.Errorf("%s: __name__ alternative %s is not served", where, prefix+a)
				}
			}
		}
		matched := false
		for n := range served {
			matched = matched || r.MatchString(n)
		}
		if !matched {
			t.Errorf("%s: __name__=~%q matches no served metric", where, re)
		}
	}
}

// dashboardExprs collects the PromQL of the dashboard: every target's
// "expr" and every query variable's query.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	exprs := map[string]string{}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for i, tg := range p.Targets {
			exprs["panel "+p.Title+" #"+string(rune('A'+i))] = tg.Expr
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(map[string]any); ok && v.Type == "query" {
			exprs["variable "+v.Name], _ = q["query"].(string)
		}
	}
	if dash.UID == "" || len(exprs) < 10 {
		t.Fatalf("dashboard uid %q, %d queries", dash.UID, len(exprs))
	}
	return exprs
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func decodeStrict(t *testing.T, file string, out any) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// TestDashboardAndAlertsUseServedMetrics checks every query of the Grafana
// dashboard and every alert rule against the metrics a running node serves.
func TestDashboardAndAlertsUseServedMetrics(t *testing.T) {
	served := servedMetrics(t)
	for _, want := range []string{"kes_http_request_success", "kes_http_request_error", "kes_http_request_failure", "kes_http_response_time", "keyraft_cluster_is_leader"} {
		if _, ok := served[want]; !ok {
			t.Fatalf("the node does not serve %s; it serves %v", want, served)
		}
	}

	used := map[string]bool{}
	for where, expr := range dashboardExprs(t) {
		checkExpr(t, "dashboard "+where, expr, served, false)
		names, _ := exprMetrics(expr)
		for _, n := range names {
			used[n] = true
		}
	}

	var rules ruleFile
	decodeStrict(t, "alerts.yaml", &rules)
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			checkExpr(t, "alert "+r.Alert, r.Expr, served, true)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.For == "" {
				t.Errorf("alert %s: needs severity, summary and for", r.Alert)
			}
			if _, err := time.ParseDuration(r.For); err != nil {
				t.Errorf("alert %s: for: %v", r.Alert, err)
			}
		}
	}
	for _, want := range []string{"KeyraftNoLeader", "KeyraftKeystoreOffline", "KeyraftNodeBehind", "KeyraftHighErrorRate", "KeyraftSlowResponses"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s", want)
		}
	}
	for n := range served {
		if strings.HasPrefix(n, "keyraft_") && !used[n] {
			t.Logf("note: %s is served but not on the dashboard", n)
		}
	}
}

// TestScrapeExample checks the scrape configs' shape.
func TestScrapeExample(t *testing.T) {
	var cfg struct {
		ScrapeConfigs []map[string]any `yaml:"scrape_configs"`
	}
	decodeStrict(t, "prometheus.yaml", &cfg)
	if len(cfg.ScrapeConfigs) == 0 {
		t.Fatal("no scrape configs")
	}
	for _, sc := range cfg.ScrapeConfigs {
		if sc["metrics_path"] != "/v1/metrics" || sc["scheme"] != "https" {
			t.Errorf("scrape config %v: want scheme https and metrics_path /v1/metrics", sc["job_name"])
		}
		tlsCfg, _ := sc["tls_config"].(map[string]any)
		if tlsCfg["cert_file"] == nil || tlsCfg["key_file"] == nil {
			t.Errorf("scrape config %v: /v1/metrics needs a client certificate", sc["job_name"])
		}
	}
}

func TestExprMetrics(t *testing.T) {
	names, res := exprMetrics(`sum by (job) (rate(kes_http_request_failure{job="keyraft_x"}[5m])) / sum(rate({__name__=~"kes_http_request_(success|error)"}[5m])) + up + keyraft_nope`)
	if want := []string{"kes_http_request_failure", "up", "keyraft_nope"}; !slices.Equal(names, want) {
		t.Errorf("names = %v, want %v", names, want)
	}
	if want := []string{"kes_http_request_(success|error)"}; !slices.Equal(res, want) {
		t.Errorf("regexps = %v, want %v", res, want)
	}
}
