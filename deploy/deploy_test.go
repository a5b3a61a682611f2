package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/internal/admin"
	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/metrics"
)

// The files checked here, relative to this package's directory.
const (
	dockerfilePath = "Dockerfile"
	composePath    = "compose.yaml"
	k8sDir         = "k8s"
	dashboardPath  = "grafana/jetsms.json"
	alertsPath     = "prometheus/alerts.yaml"
	unitPath       = "systemd/jetsms.service"
	envExamplePath = "systemd/env.example"
	scrapePath     = "prometheus/scrape.yaml"
	secretsScript  = "../scripts/deploy-secrets.sh"
	versionGoPath  = "../cmd/jetsms/version.go"
)

// readFile returns a deployment file's contents.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return data
}

// decodeYAML decodes every document of a YAML file into nodes; an empty file or
// document is an error.
func decodeYAML(t *testing.T, path string) []*yaml.Node {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, path)))
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, path)
		docs = append(docs, &doc)
	}
	require.NotEmpty(t, docs, "%s has no YAML document", path)
	return docs
}

// loadConfig loads the configuration a jetsms process started with args and env
// would load: args start with the command (worker, receiver, sandbox).
func loadConfig(t *testing.T, args []string, env map[string]string) (config.Config, error) {
	t.Helper()
	require.NotEmpty(t, args, "a jetsms command")
	fs := flag.NewFlagSet("jetsms "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flags := config.RegisterFlags(fs)
	if args[0] == "sandbox" {
		flags.Client() // as `jetsms sandbox` loads it
	}
	require.NoError(t, fs.Parse(args[1:]))
	return flags.Load(func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	})
}

// registeredSeries returns the name of every series the metrics package serves:
// each family's name, and _bucket, _sum and _count for histograms and summaries.
// Every family is present: the lane series after InitLanes, the backlog series
// from a collector reading a real JetStream server.
func registeredSeries(t *testing.T) (series map[string]bool, jetsmsFamilies []string) {
	t.Helper()
	env := brokertest.Run(t)
	m := metrics.New()
	m.SetBuildInfo("test")
	m.InitLanes("priority")
	backlog, err := metrics.NewBacklogCollector(env.JS, env.Names, []string{"priority"})
	require.NoError(t, err)
	require.NoError(t, m.Register(backlog))

	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)

	series = map[string]bool{}
	for name, f := range families {
		series[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY {
			series[name+"_sum"], series[name+"_count"] = true, true
			if f.GetType() == dto.MetricType_HISTOGRAM {
				series[name+"_bucket"] = true
			}
		}
		if strings.HasPrefix(name, "jetsms_") {
			jetsmsFamilies = append(jetsmsFamilies, name)
		}
	}
	slices.Sort(jetsmsFamilies)
	return series, jetsmsFamilies
}

// family is the metric family a series name belongs to.
func family(series string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok && !strings.HasSuffix(series, "_total") {
			return base
		}
	}
	return series
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	stages := parseDockerfile(t, dockerfilePath)
	require.GreaterOrEqual(t, len(stages), 2, "a multi-stage build")

	builder, final := stages[0], stages[len(stages)-1]
	require.True(t, strings.HasPrefix(builder.from, "golang:1.26"), "builder FROM %s", builder.from)
	require.NotEmpty(t, builder.name, "the builder stage is named (FROM ... AS build)")
	require.Regexp(t, `^(gcr\.io/distroless/static[-a-z0-9]*(:[-a-z0-9.]+)?|scratch)$`, final.from)

	build := strings.Join(builder.all("RUN"), "\n")
	require.Contains(t, build, "CGO_ENABLED=0")
	require.Contains(t, build, "-trimpath")
	require.Contains(t, build, "./cmd/jetsms")
	// The version ldflag sets a variable cmd/jetsms reads.
	require.Contains(t, build, "-X main.version=")
	require.Regexp(t, `(?m)^var version = `, string(readFile(t, versionGoPath)))
	for _, pkg := range regexp.MustCompile(`\./[a-z/]+`).FindAllString(build, -1) {
		info, err := os.Stat(filepath.Join("..", pkg))
		require.NoError(t, err, "the build names %s", pkg)
		require.True(t, info.IsDir())
	}

	users := final.all("USER")
	require.NotEmpty(t, users, "the final stage sets USER")
	user, _, _ := strings.Cut(users[len(users)-1], ":")
	require.NotContains(t, []string{"root", "0", ""}, user, "the final USER is not root")
	require.Equal(t, []string{"8080 9090"}, final.all("EXPOSE"), "the callbacks and admin ports")

	entry := final.all("ENTRYPOINT")
	require.Len(t, entry, 1)
	var argv []string
	require.NoError(t, json.Unmarshal([]byte(entry[0]), &argv), "ENTRYPOINT in exec form")
	require.Equal(t, "jetsms", filepath.Base(argv[0]))

	copied := map[string]bool{}
	for _, c := range final.all("COPY") {
		fields := strings.Fields(c)
		require.Equal(t, "--from="+builder.name, fields[0], "the final stage copies from the builder")
		copied[fields[len(fields)-1]] = true
	}
	require.True(t, copied[argv[0]], "the entrypoint %s is copied in", argv[0])
	if final.from == "scratch" {
		require.True(t, copied["/etc/ssl/certs/ca-certificates.crt"], "scratch needs CA certificates")
	}
	// compose.yaml's health checks run a binary the image has.
	for _, svc := range readCompose(t).Services {
		if svc.Build != nil && svc.Healthcheck != nil && svc.Healthcheck.Test[0] == "CMD" {
			require.True(t, copied[svc.Healthcheck.Test[1]], "health check binary %s is in the image", svc.Healthcheck.Test[1])
		}
	}
}

// dockerStage is one FROM and the instructions after it.
type dockerStage struct {
	from, name string
	instr      [][2]string // instruction, arguments
}

// all returns the arguments of every instruction op of the stage.
func (s dockerStage) all(op string) []string {
	var out []string
	for _, in := range s.instr {
		if in[0] == op {
			out = append(out, in[1])
		}
	}
	return out
}

// parseDockerfile splits a Dockerfile into stages, joining continued lines.
func parseDockerfile(t *testing.T, path string) []dockerStage {
	t.Helper()
	var stages []dockerStage
	var line strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "#") || (text == "" && line.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(text, `\`); ok {
			line.WriteString(cont + " ")
			continue
		}
		line.WriteString(text)
		op, args, _ := strings.Cut(strings.TrimSpace(line.String()), " ")
		line.Reset()
		op, args = strings.ToUpper(op), strings.TrimSpace(args)
		if op == "FROM" {
			fields := strings.Fields(args)
			st := dockerStage{from: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			}
			stages = append(stages, st)
			continue
		}
		require.NotEmpty(t, stages, "%s: %s before FROM", path, op)
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, [2]string{op, args})
	}
	require.NoError(t, sc.Err())
	return stages
}

// composeFile is what the tests read of compose.yaml.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Volumes []string `yaml:"volumes"`
	Ports   []string `yaml:"ports"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	var f composeFile
	require.NoError(t, decodeYAML(t, composePath)[0].Decode(&f))
	return f
}

// requiredVar matches compose's ${NAME:?message}: a variable compose refuses to
// run without.
var requiredVar = regexp.MustCompile(`^\$\{([A-Z_][A-Z0-9_]*):\?[^}]+\}$`)

// composeSecrets runs scripts/deploy-secrets.sh compose in a scratch copy of the
// repository's layout and returns the variables of the deploy/.env it wrote.
func composeSecrets(t *testing.T) map[string]string {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "scripts"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "deploy"), 0o755))
	script := filepath.Join(root, "scripts", "deploy-secrets.sh")
	require.NoError(t, os.WriteFile(script, readFile(t, secretsScript), 0o755))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", script, "compose").CombinedOutput()
	require.NoError(t, err, string(out))
	envFile := filepath.Join(root, "deploy", ".env")
	info, err := os.Stat(envFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "deploy/.env holds passwords")
	first := readEnvFile(t, envFile)
	// A second run keeps the file: rotating is deleting it on purpose.
	out, err = exec.CommandContext(ctx, "bash", script, "compose").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Equal(t, first, readEnvFile(t, envFile))
	return first
}

// interpolate replaces a ${NAME:?message} value by vars[NAME], as compose does.
func interpolate(t *testing.T, value string, vars map[string]string) string {
	t.Helper()
	m := requiredVar.FindStringSubmatch(value)
	if m == nil {
		require.NotContains(t, value, "${", "only ${NAME:?message} is used, so a missing variable stops compose")
		return value
	}
	v, ok := vars[m[1]]
	require.True(t, ok, "deploy/.env from scripts/deploy-secrets.sh sets %s", m[1])
	return v
}

// publishedPort is one compose port mapping: host address ("" for every
// interface), host port and container port.
type publishedPort struct{ hostIP, hostPort, containerPort string }

func parsePort(t *testing.T, spec string) publishedPort {
	t.Helper()
	parts := strings.Split(spec, ":")
	switch len(parts) {
	case 2:
		return publishedPort{hostPort: parts[0], containerPort: parts[1]}
	case 3:
		return publishedPort{hostIP: parts[0], hostPort: parts[1], containerPort: parts[2]}
	}
	require.Failf(t, "port mapping", "%q: give host and container port (and an address unless it is public)", spec)
	return publishedPort{}
}

// flagValue returns the value of --name=value in args.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func TestCompose(t *testing.T) {
	t.Parallel()
	f := readCompose(t)
	natsNodes := []string{"nats-1", "nats-2", "nats-3"}
	byCommand := map[string][]string{}
	for name, svc := range f.Services {
		if svc.Build != nil {
			require.NotEmpty(t, svc.Command, "%s: a jetsms command", name)
			byCommand[svc.Command[0]] = append(byCommand[svc.Command[0]], name)
			_, err := os.Stat(filepath.Join(svc.Build.Context, svc.Build.Dockerfile))
			require.NoError(t, err, "%s: the Dockerfile, relative to the build context", name)
		}
		for dep, d := range svc.DependsOn {
			require.Contains(t, f.Services, dep, "%s depends on a service that exists", name)
			require.Equal(t, "service_healthy", d.Condition, "%s waits for %s to be healthy", name, dep)
			require.NotNil(t, f.Services[dep].Healthcheck, "%s, which %s waits for, has a health check", dep, name)
		}
	}
	for _, list := range byCommand {
		slices.Sort(list)
	}
	require.Equal(t, []string{"worker-1", "worker-2"}, byCommand["worker"])
	require.Equal(t, []string{"receiver"}, byCommand["receiver"])
	require.Equal(t, []string{"sandbox"}, byCommand["sandbox"])

	t.Run("ThreeNATSNodesRoutedToEachOther", func(t *testing.T) {
		t.Parallel()
		clusterName := ""
		for _, node := range natsNodes {
			svc, ok := f.Services[node]
			require.True(t, ok, node)
			require.True(t, strings.HasPrefix(svc.Image, "nats:2.12"), "%s image %s", node, svc.Image)
			require.Contains(t, svc.Command, "--jetstream", node)
			name, _ := flagValue(svc.Command, "name")
			require.Equal(t, node, name, "%s: a server name of its own", node)
			cn, ok := flagValue(svc.Command, "cluster_name")
			require.True(t, ok, node)
			if clusterName == "" {
				clusterName = cn
			}
			require.Equal(t, clusterName, cn, "%s: one cluster name", node)
			listen, ok := flagValue(svc.Command, "cluster")
			require.True(t, ok, "%s listens for routes", node)
			lu, err := url.Parse(listen)
			require.NoError(t, err)
			require.Equal(t, "6222", lu.Port())
			store, ok := flagValue(svc.Command, "store_dir")
			require.True(t, ok, node)
			require.Contains(t, svc.Volumes, node+":"+store, "%s keeps its store in a volume", node)
			require.Contains(t, f.Volumes, node)

			routes, ok := flagValue(svc.Command, "routes")
			require.True(t, ok, "%s has routes", node)
			var hosts []string
			for _, r := range strings.Split(routes, ",") {
				u, err := url.Parse(r)
				require.NoError(t, err)
				require.Equal(t, "6222", u.Port())
				hosts = append(hosts, u.Hostname())
			}
			slices.Sort(hosts)
			others := slices.DeleteFunc(slices.Clone(natsNodes), func(n string) bool { return n == node })
			require.Equal(t, others, hosts, "%s routes to the other nodes", node)
		}
	})

	t.Run("JetsmsServicesWaitForNATSAndReportReadiness", func(t *testing.T) {
		t.Parallel()
		for _, name := range slices.Concat(byCommand["worker"], byCommand["receiver"]) {
			svc := f.Services[name]
			for _, node := range natsNodes {
				require.Contains(t, svc.DependsOn, node, "%s waits for %s", name, node)
			}
			require.NotNil(t, svc.Healthcheck, name)
			require.Contains(t, strings.Join(svc.Healthcheck.Test, " "), "/readyz", name)
		}
		for _, name := range byCommand["worker"] {
			require.Contains(t, f.Services[name].DependsOn, "sandbox", "%s waits for the simulator", name)
		}
	})

	secrets := composeSecrets(t)
	// env is a service's environment as compose passes it, with deploy/.env's values.
	env := func(svc composeService) map[string]string {
		out := map[string]string{}
		for k, v := range svc.Environment {
			out[k] = interpolate(t, v, secrets)
		}
		return out
	}

	t.Run("NATSRequiresTheUserAndPasswordOfDeployEnv", func(t *testing.T) {
		t.Parallel()
		for _, node := range natsNodes {
			svc := f.Services[node]
			user, ok := flagValue(svc.Command, "user")
			require.True(t, ok, "%s requires a user", node)
			require.Equal(t, "jetsms", user, node)
			pass, ok := flagValue(svc.Command, "pass")
			require.True(t, ok, "%s requires a password", node)
			require.Regexp(t, requiredVar, pass, "%s: the password comes from deploy/.env, never the file", node)
			require.NotEmpty(t, interpolate(t, pass, secrets))
			for _, name := range slices.Concat(byCommand["worker"], byCommand["receiver"]) {
				cfg, err := loadConfig(t, f.Services[name].Command, env(f.Services[name]))
				require.NoError(t, err, name)
				require.Equal(t, user, cfg.NATS.User, name)
				require.Equal(t, interpolate(t, pass, secrets), cfg.NATS.Password.Reveal(), "%s presents the password NATS requires", name)
			}
		}
	})

	t.Run("NoPasswordIsWrittenInTheFile", func(t *testing.T) {
		t.Parallel()
		for name, svc := range f.Services {
			for k, v := range svc.Environment {
				if !strings.HasSuffix(k, "_PASSWORD") && !strings.HasSuffix(k, "_TOKEN") {
					continue
				}
				if k == "JETSMS_GATEWAY_PASSWORD" {
					// The simulator's own credentials: it accepts exactly these.
					require.Equal(t, f.Services["sandbox"].Environment[k], v, name)
					continue
				}
				require.Regexp(t, requiredVar, v, "%s: %s comes from deploy/.env", name, k)
			}
		}
	})

	t.Run("OnlyTheCallbacksPortIsPublishedBeyondThisHost", func(t *testing.T) {
		t.Parallel()
		public := 0
		for name, svc := range f.Services {
			for _, spec := range svc.Ports {
				p := parsePort(t, spec)
				if p.hostIP == "127.0.0.1" {
					continue
				}
				require.Empty(t, p.hostIP, "%s: %s is on loopback or public", name, spec)
				public++
				require.Equal(t, []string{"receiver"}, byCommand[svc.Command[0]], "%s: only the receiver is public (%s)", name, spec)
				cfg, err := loadConfig(t, svc.Command, env(svc))
				require.NoError(t, err)
				_, port, err := net.SplitHostPort(cfg.Callbacks.Listen)
				require.NoError(t, err)
				require.Equal(t, port, p.containerPort, "%s: the public port is callbacks.listen's", name)
			}
		}
		require.Equal(t, 1, public, "one public port: the gateway's callbacks")
		for _, node := range natsNodes {
			for _, spec := range f.Services[node].Ports {
				require.NotEqual(t, "8222", parsePort(t, spec).containerPort, "%s: NATS monitoring is not published", node)
			}
		}
	})

	t.Run("HealthChecksAskTheAdminListener", func(t *testing.T) {
		t.Parallel()
		for _, name := range slices.Concat(byCommand["worker"], byCommand["receiver"]) {
			svc := f.Services[name]
			cfg, err := loadConfig(t, svc.Command, env(svc))
			require.NoError(t, err, name)
			_, err = admin.New(admin.Config{Listen: cfg.Admin.Listen, Username: cfg.Admin.Username,
				Password: cfg.Admin.Password, AllowUnauthenticated: cfg.Admin.AllowUnauthenticated}, nil)
			require.NoError(t, err, "%s: the admin listener would start", name)
			require.NotEmpty(t, cfg.Admin.Username, "%s: beyond the container's loopback with credentials", name)
			require.False(t, cfg.Admin.AllowUnauthenticated, name)
			check := svc.Healthcheck.Test
			u, err := url.Parse(check[len(check)-1])
			require.NoError(t, err, name)
			_, adminPort, err := net.SplitHostPort(cfg.Admin.Listen)
			require.NoError(t, err)
			require.Equal(t, adminPort, u.Port(), "%s: the health check asks the admin port", name)
			require.Equal(t, admin.PathReady, u.Path, name)
		}
	})

	t.Run("ConfigurationIsValidAndPointsAtTheCluster", func(t *testing.T) {
		t.Parallel()
		sandbox := f.Services["sandbox"]
		simCfg, err := loadConfig(t, sandbox.Command, env(sandbox))
		require.NoError(t, err)
		_, simPort, err := net.SplitHostPort(simCfg.Sandbox.Listen)
		require.NoError(t, err)
		require.NotContains(t, []string{"127.0.0.1", "localhost"}, strings.Split(simCfg.Sandbox.Listen, ":")[0],
			"the simulator listens beyond its container")

		for _, name := range slices.Concat(byCommand["worker"], byCommand["receiver"]) {
			svc := f.Services[name]
			cfg, err := loadConfig(t, svc.Command, env(svc))
			require.NoError(t, err, name)
			require.Equal(t, 3, cfg.Streams.Replicas, name)
			var hosts []string
			for _, u := range strings.Split(cfg.NATS.URL, ",") {
				parsed, err := url.Parse(strings.TrimSpace(u))
				require.NoError(t, err)
				hosts = append(hosts, parsed.Hostname())
			}
			slices.Sort(hosts)
			require.Equal(t, natsNodes, hosts, "%s: nats.url lists the three nodes", name)
			gw, err := url.Parse(cfg.Gateway.URL)
			require.NoError(t, err)
			require.Equal(t, "sandbox", gw.Hostname(), "%s sends to the simulator", name)
			require.Equal(t, simPort, gw.Port(), name)
			require.Equal(t, simCfg.Gateway.Username, cfg.Gateway.Username, "%s uses the simulator's credentials", name)
			require.Equal(t, simCfg.Gateway.Password.Reveal(), cfg.Gateway.Password.Reveal(), name)
		}
	})
}

// k8sHeader is what every manifest has.
type k8sHeader struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
}

type k8sDeployment struct {
	Spec struct {
		Replicas int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
					RunAsUser    int  `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				Containers []k8sContainer `yaml:"containers"`
				Volumes    []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sService struct {
	Spec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type k8sPDB struct {
	Spec struct {
		MinAvailable   any `yaml:"minAvailable"`
		MaxUnavailable any `yaml:"maxUnavailable"`
		Selector       struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	} `yaml:"spec"`
}

type k8sData struct {
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

// k8sObjects are the manifests of deploy/k8s by kind and name.
type k8sObjects struct {
	nodes map[string]map[string]*yaml.Node // kind → name → document
	files []string
}

func readK8s(t *testing.T) k8sObjects {
	t.Helper()
	objs := k8sObjects{nodes: map[string]map[string]*yaml.Node{}}
	paths, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	require.NoError(t, err)
	for _, path := range paths {
		if filepath.Base(path) == "kustomization.yaml" {
			continue
		}
		objs.files = append(objs.files, filepath.Base(path))
		for _, doc := range decodeYAML(t, path) {
			var h k8sHeader
			require.NoError(t, doc.Decode(&h), path)
			require.NotEmpty(t, h.APIVersion, "%s: apiVersion", path)
			require.NotEmpty(t, h.Kind, "%s: kind", path)
			require.NotEmpty(t, h.Metadata.Name, "%s: metadata.name", path)
			require.Empty(t, h.Metadata.Namespace, "%s: namespace-agnostic", path)
			if objs.nodes[h.Kind] == nil {
				objs.nodes[h.Kind] = map[string]*yaml.Node{}
			}
			require.NotContains(t, objs.nodes[h.Kind], h.Metadata.Name, "%s: %s %s twice", path, h.Kind, h.Metadata.Name)
			objs.nodes[h.Kind][h.Metadata.Name] = doc
		}
	}
	return objs
}

// get decodes the object kind/name into out.
func (o k8sObjects) get(t *testing.T, kind, name string, out any) {
	t.Helper()
	doc, ok := o.nodes[kind][name]
	require.True(t, ok, "%s %s exists", kind, name)
	require.NoError(t, doc.Decode(out))
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func TestKubernetes(t *testing.T) {
	t.Parallel()
	objs := readK8s(t)

	var kustomization struct {
		Resources       []string `yaml:"resources"`
		SecretGenerator []any    `yaml:"secretGenerator"`
	}
	require.NoError(t, decodeYAML(t, filepath.Join(k8sDir, "kustomization.yaml"))[0].Decode(&kustomization))
	require.ElementsMatch(t, objs.files, kustomization.Resources, "kustomization.yaml lists every manifest")
	// kubectl apply -k applies no password: scripts/deploy-secrets.sh k8s (or the
	// operator's secret store) makes the Secret.
	require.Empty(t, objs.nodes["Secret"], "no Secret is applied by default")
	require.Empty(t, kustomization.SecretGenerator, "no Secret is generated with literal values")

	var cm k8sData
	objs.get(t, "ConfigMap", "jetsms-config", &cm)
	// The Secret's keys are those the script writes; the test gives each a value.
	secret := k8sData{StringData: map[string]string{}}
	for _, m := range regexp.MustCompile(`--from-literal=([a-z-]+)=`).FindAllStringSubmatch(string(readFile(t, secretsScript)), -1) {
		secret.StringData[m[1]] = "test-" + m[1] + "-9d2f"
	}
	require.Len(t, secret.StringData, 4, "gateway, NATS, callbacks and admin passwords")

	deployments := map[string]k8sDeployment{}
	for _, tc := range []struct{ name, command string }{
		{"jetsms-worker", "worker"},
		{"jetsms-receiver", "receiver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d k8sDeployment
			objs.get(t, "Deployment", tc.name, &d)
			deployments[tc.name] = d
			pod := d.Spec.Template.Spec
			require.True(t, subset(d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels), "the selector selects its pods")
			require.True(t, pod.SecurityContext.RunAsNonRoot)
			require.NotZero(t, pod.SecurityContext.RunAsUser)
			require.Len(t, pod.Containers, 1)
			c := pod.Containers[0]

			require.NotEmpty(t, c.Image)
			require.GreaterOrEqual(t, len(c.Args), 3)
			require.Equal(t, tc.command, c.Args[0])
			require.Equal(t, "--config", c.Args[1])
			configPath := c.Args[2]

			// The config file is the ConfigMap's key, mounted read-only.
			mounted := false
			for _, vm := range c.VolumeMounts {
				for _, v := range pod.Volumes {
					if v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == "jetsms-config" &&
						filepath.Dir(configPath) == vm.MountPath && vm.ReadOnly {
						require.Contains(t, cm.Data, filepath.Base(configPath))
						mounted = true
					}
				}
			}
			require.True(t, mounted, "%s is mounted from the ConfigMap", configPath)

			portNames := map[string]int{}
			for _, p := range c.Ports {
				portNames[p.Name] = p.ContainerPort
			}
			require.Equal(t, 8080, portNames["http"])
			require.Equal(t, 9090, portNames["admin"])
			// The probes ask the admin listener: readiness, and liveness, which
			// fails once the NATS connection is closed for good.
			require.NotNil(t, c.ReadinessProbe)
			require.Equal(t, admin.PathReady, c.ReadinessProbe.HTTPGet.Path)
			require.Equal(t, "admin", c.ReadinessProbe.HTTPGet.Port)
			require.NotNil(t, c.LivenessProbe)
			require.Equal(t, admin.PathHealth, c.LivenessProbe.HTTPGet.Path)
			require.Equal(t, "admin", c.LivenessProbe.HTTPGet.Port)
			annotations := d.Spec.Template.Metadata.Annotations
			require.Equal(t, strconv.Itoa(portNames["admin"]), annotations["prometheus.io/port"], "Prometheus scrapes the admin port")
			require.Equal(t, "/metrics", annotations["prometheus.io/path"])

			for _, r := range []string{"cpu", "memory"} {
				require.NotEmpty(t, c.Resources.Requests[r], "requests.%s", r)
				require.NotEmpty(t, c.Resources.Limits[r], "limits.%s", r)
			}
			require.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation)
			require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
			require.True(t, c.SecurityContext.ReadOnlyRootFilesystem)
			require.Equal(t, []string{"ALL"}, c.SecurityContext.Capabilities.Drop)

			// The process would start: the ConfigMap's file with the Secret's values.
			env := map[string]string{}
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					require.Equal(t, "jetsms-credentials", e.ValueFrom.SecretKeyRef.Name, e.Name)
					v, ok := secret.StringData[e.ValueFrom.SecretKeyRef.Key]
					require.True(t, ok, "%s: the Secret has key %s", e.Name, e.ValueFrom.SecretKeyRef.Key)
					env[e.Name] = v
					continue
				}
				env[e.Name] = e.Value
			}
			file := filepath.Join(t.TempDir(), filepath.Base(configPath))
			require.NoError(t, os.WriteFile(file, []byte(cm.Data[filepath.Base(configPath)]), 0o600))
			args := slices.Clone(c.Args)
			args[2] = file
			cfg, err := loadConfig(t, args, env)
			require.NoError(t, err)
			require.Equal(t, ":"+strconv.Itoa(portNames["http"]), cfg.Callbacks.Listen, "callbacks.listen is the container port")
			require.Equal(t, ":"+strconv.Itoa(portNames["admin"]), cfg.Admin.Listen, "admin.listen is the admin container port")
			_, err = admin.New(admin.Config{Listen: cfg.Admin.Listen, Username: cfg.Admin.Username,
				Password: cfg.Admin.Password, AllowUnauthenticated: cfg.Admin.AllowUnauthenticated}, nil)
			require.NoError(t, err, "the admin listener would start")
			require.NotEmpty(t, cfg.Admin.Username, "the admin listener has credentials")
			require.True(t, cfg.Admin.Password.IsSet())
			// NATS with auth: the user from the ConfigMap, the password from the Secret.
			require.NotEmpty(t, cfg.NATS.User)
			require.Equal(t, secret.StringData["nats-password"], cfg.NATS.Password.Reveal())
			require.Positive(t, pod.TerminationGracePeriodSeconds)
			if tc.command == "worker" {
				require.Equal(t, 2, d.Spec.Replicas)
				require.Greater(t, time.Duration(pod.TerminationGracePeriodSeconds)*time.Second, cfg.Worker.GracePeriod+10*time.Second,
					"terminationGracePeriodSeconds is above worker.grace_period, with room for the callback server and consumers to stop")
			}
		})
	}

	t.Run("ServiceSelectsThePodsPorts", func(t *testing.T) {
		var svc k8sService
		objs.get(t, "Service", "jetsms-callbacks", &svc)
		require.NotEmpty(t, svc.Spec.Ports)
		for _, p := range svc.Spec.Ports {
			require.Equal(t, "http", p.TargetPort, "the Service exposes the callbacks port only")
		}
		require.Len(t, objs.nodes["Service"], 1, "no Service exposes the admin port")
		selected := 0
		for _, d := range deployments {
			if subset(svc.Spec.Selector, d.Spec.Template.Metadata.Labels) {
				selected++
				for _, p := range svc.Spec.Ports {
					found := false
					for _, cp := range d.Spec.Template.Spec.Containers[0].Ports {
						found = found || cp.Name == p.TargetPort || strconv.Itoa(cp.ContainerPort) == p.TargetPort
					}
					require.True(t, found, "targetPort %s is a container port", p.TargetPort)
				}
			}
		}
		require.Positive(t, selected, "the Service selects jetsms pods")
	})

	t.Run("NetworkPolicyLetsInOnlyCallbacksAndScrapes", func(t *testing.T) {
		var np struct {
			Spec struct {
				PodSelector struct {
					MatchLabels map[string]string `yaml:"matchLabels"`
				} `yaml:"podSelector"`
				PolicyTypes []string `yaml:"policyTypes"`
				Ingress     []struct {
					From  []map[string]any `yaml:"from"`
					Ports []struct {
						Port any `yaml:"port"`
					} `yaml:"ports"`
				} `yaml:"ingress"`
				Egress []struct {
					To    []map[string]any `yaml:"to"`
					Ports []struct {
						Port any `yaml:"port"`
					} `yaml:"ports"`
				} `yaml:"egress"`
			} `yaml:"spec"`
		}
		objs.get(t, "NetworkPolicy", "jetsms", &np)
		require.ElementsMatch(t, []string{"Ingress", "Egress"}, np.Spec.PolicyTypes)
		for name, d := range deployments {
			require.True(t, subset(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Metadata.Labels), "the policy selects %s", name)
		}
		allowed := map[string]bool{}
		for _, rule := range np.Spec.Ingress {
			require.NotEmpty(t, rule.From, "every ingress rule names who may connect")
			require.NotEmpty(t, rule.Ports, "every ingress rule names its ports")
			for _, p := range rule.Ports {
				allowed[fmt.Sprint(p.Port)] = true
			}
		}
		require.Equal(t, map[string]bool{"http": true, "admin": true}, allowed, "only the callbacks and admin ports are reachable")
		egressPorts := map[string]bool{}
		for _, rule := range np.Spec.Egress {
			require.NotEmpty(t, rule.Ports, "every egress rule names its ports")
			for _, p := range rule.Ports {
				egressPorts[fmt.Sprint(p.Port)] = true
			}
		}
		for _, port := range []string{"53", "4222", "443"} {
			require.True(t, egressPorts[port], "egress to port %s (DNS, NATS, the gateway)", port)
		}
	})

	t.Run("DisruptionBudgetsCoverTheDeployments", func(t *testing.T) {
		require.NotEmpty(t, objs.nodes["PodDisruptionBudget"])
		for name := range objs.nodes["PodDisruptionBudget"] {
			var pdb k8sPDB
			objs.get(t, "PodDisruptionBudget", name, &pdb)
			require.True(t, (pdb.Spec.MinAvailable == nil) != (pdb.Spec.MaxUnavailable == nil), "%s: one of minAvailable and maxUnavailable", name)
			matches := 0
			for _, d := range deployments {
				if subset(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
					matches++
				}
			}
			require.Equal(t, 1, matches, "%s selects the pods of one Deployment", name)
		}
	})
}

// systemdUnit is a unit file: section → key → values in order.
type systemdUnit map[string]map[string][]string

// parseUnit reads a systemd unit file: [Section] headers and Key=Value lines,
// with # and ; comments and backslash continuations.
func parseUnit(t *testing.T, path string) systemdUnit {
	t.Helper()
	u := systemdUnit{}
	section := ""
	var pending string
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending += cont + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") {
			require.True(t, strings.HasSuffix(line, "]"), "%s:%d: section header", path, n)
			section = line[1 : len(line)-1]
			require.NotContains(t, u, section, "%s:%d: section [%s] twice", path, n, section)
			u[section] = map[string][]string{}
			continue
		}
		require.NotEmpty(t, section, "%s:%d: a key before the first section", path, n)
		key, value, ok := strings.Cut(line, "=")
		require.True(t, ok, "%s:%d: not Key=Value: %q", path, n, line)
		key = strings.TrimSpace(key)
		require.Regexp(t, `^[A-Za-z][A-Za-z0-9]*$`, key, "%s:%d", path, n)
		u[section][key] = append(u[section][key], strings.TrimSpace(value))
	}
	require.NoError(t, sc.Err())
	return u
}

// last returns the effective value of a single-valued key.
func (u systemdUnit) last(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// systemdSeconds reads a systemd time span such as 60, 60s, 1min 30s or 2min.
func systemdSeconds(t *testing.T, span string) time.Duration {
	t.Helper()
	if n, err := strconv.Atoi(span); err == nil {
		return time.Duration(n) * time.Second
	}
	r := strings.NewReplacer("min", "m", " ", "")
	d, err := time.ParseDuration(r.Replace(span))
	require.NoError(t, err, "time span %q", span)
	return d
}

// readEnvFile reads KEY=VALUE lines, skipping comments and blank lines.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "%s:%d: not KEY=VALUE", path, n)
		env[k] = v
	}
	require.NoError(t, sc.Err())
	return env
}

func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	u := parseUnit(t, unitPath)
	require.NotEmpty(t, u.last("Unit", "Description"))
	require.NotEmpty(t, u.last("Install", "WantedBy"))

	exec := strings.Fields(u.last("Service", "ExecStart"))
	require.GreaterOrEqual(t, len(exec), 2)
	require.Equal(t, "/usr/local/bin/jetsms", exec[0])
	require.Contains(t, []string{"worker", "receiver", "run"}, exec[1])

	require.True(t, u.last("Service", "DynamicUser") == "yes" || u.last("Service", "User") == "jetsms",
		"DynamicUser=yes or User=jetsms")
	require.Equal(t, "strict", u.last("Service", "ProtectSystem"))
	require.Equal(t, "yes", u.last("Service", "NoNewPrivileges"))
	require.Equal(t, "/etc/jetsms/env", u.last("Service", "EnvironmentFile"))
	require.Equal(t, "on-failure", u.last("Service", "Restart"))
	require.Equal(t, "SIGTERM", u.last("Service", "KillSignal"))
	state := u.last("Service", "StateDirectory")
	require.NotEmpty(t, state)

	// The process's environment: the unit's Environment=, overridden by the env
	// file (as systemd does), here the example.
	env := map[string]string{}
	for _, kv := range u["Service"]["Environment"] {
		k, v, ok := strings.Cut(kv, "=")
		require.True(t, ok, "Environment=%s", kv)
		env[k] = v
	}
	for k, v := range readEnvFile(t, envExamplePath) {
		if strings.HasSuffix(k, "_PASSWORD") {
			// The example leaves passwords empty, so that jetsms refuses to start
			// until they are set; the operator's values stand in here.
			require.Empty(t, v, "%s: no password in the example", k)
			v = "operator-set-" + strings.ToLower(k)
		}
		env[k] = v
	}
	cfg, err := loadConfig(t, exec[1:], env)
	require.NoError(t, err)
	_, err = admin.New(admin.Config{Listen: cfg.Admin.Listen, Username: cfg.Admin.Username,
		Password: cfg.Admin.Password, AllowUnauthenticated: cfg.Admin.AllowUnauthenticated}, nil)
	require.NoError(t, err, "the admin listener would start")
	require.Equal(t, admin.ListenDefault, cfg.Admin.Listen, "the admin listener stays on loopback")

	// ProtectSystem=strict leaves only the state directory writable: the embedded
	// server's store must be in it.
	stateDir := "/var/lib/" + state
	store := cfg.NATS.Embedded.StoreDir
	if !filepath.IsAbs(store) {
		store = filepath.Join(u.last("Service", "WorkingDirectory"), store)
	}
	require.True(t, strings.HasPrefix(store, stateDir+"/"), "store_dir %s is under %s", store, stateDir)

	require.Greater(t, systemdSeconds(t, u.last("Service", "TimeoutStopSec")), cfg.Worker.GracePeriod,
		"TimeoutStopSec is above worker.grace_period")
}

func TestEnvironmentVariablesAreSettings(t *testing.T) {
	t.Parallel()
	known := map[string]bool{config.ConfigEnv: true}
	for _, s := range config.Settings() {
		known[s.Env] = true
	}
	files := []string{composePath, dockerfilePath, unitPath, envExamplePath}
	k8sFiles, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	require.NoError(t, err)
	files = append(files, k8sFiles...)
	used := 0
	for _, path := range files {
		for _, name := range regexp.MustCompile(`JETSMS_[A-Z0-9_]+`).FindAllString(string(readFile(t, path)), -1) {
			require.True(t, known[name], "%s: %s is not a jetsms setting", path, name)
			used++
		}
	}
	require.Positive(t, used)
}

// grafanaPanel is what the tests read of a dashboard panel.
type grafanaPanel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource map[string]any `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

func TestDashboard(t *testing.T) {
	t.Parallel()
	var dash struct {
		Title         string         `json:"title"`
		UID           string         `json:"uid"`
		SchemaVersion int            `json:"schemaVersion"`
		Panels        []grafanaPanel `json:"panels"`
		Templating    struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	dec := json.NewDecoder(bytes.NewReader(readFile(t, dashboardPath)))
	require.NoError(t, dec.Decode(&dash))
	require.NotEmpty(t, dash.Title)
	require.NotEmpty(t, dash.UID)
	require.Positive(t, dash.SchemaVersion)

	series, families := registeredSeries(t)
	used := map[string]bool{}
	check := func(where, expr string) {
		names, err := promqlMetricNames(expr)
		require.NoError(t, err, where)
		require.NotEmpty(t, names, "%s: %s selects no series", where, expr)
		for _, n := range names {
			require.True(t, series[n], "%s: %s is not a series the metrics package registers", where, n)
			used[family(n)] = true
		}
	}

	ids := map[int]bool{}
	var walk func([]grafanaPanel)
	walk = func(panels []grafanaPanel) {
		for _, p := range panels {
			require.False(t, ids[p.ID], "panel id %d twice", p.ID)
			ids[p.ID] = true
			require.NotEmpty(t, p.Type, "panel %d", p.ID)
			require.NotEmpty(t, p.Title, "panel %d", p.ID)
			require.Positive(t, p.GridPos.W, p.Title)
			require.Positive(t, p.GridPos.H, p.Title)
			require.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, p.Title)
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			require.NotEmpty(t, p.Datasource, p.Title)
			require.NotEmpty(t, p.Targets, p.Title)
			for _, tg := range p.Targets {
				require.NotEmpty(t, tg.RefID, p.Title)
				check("panel "+strconv.Quote(p.Title), tg.Expr)
			}
		}
	}
	walk(dash.Panels)

	labelValues := regexp.MustCompile(`^label_values\((\w+),\s*\w+\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		m := labelValues.FindStringSubmatch(q["query"].(string))
		require.NotNil(t, m, "variable %s: label_values(metric, label)", v.Name)
		require.True(t, series[m[1]], "variable %s: %s is registered", v.Name, m[1])
	}

	var missing []string
	for _, f := range families {
		if !used[f] {
			missing = append(missing, f)
		}
	}
	require.Empty(t, missing, "every jetsms metric family has a panel")
}

func TestAlerts(t *testing.T) {
	t.Parallel()
	var rules struct {
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
	docs := decodeYAML(t, alertsPath)
	require.Len(t, docs, 1)
	require.NoError(t, docs[0].Decode(&rules))
	require.NotEmpty(t, rules.Groups)

	series, _ := registeredSeries(t)
	// Prometheus's template functions, enough to parse the annotations.
	funcs := template.FuncMap{}
	for _, f := range []string{"humanize", "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "query", "first", "value", "label", "printf", "title", "toUpper", "toLower"} {
		funcs[f] = func(...any) any { return nil }
	}

	groups, alerts := map[string]bool{}, map[string]bool{}
	used := map[string]bool{}
	for _, g := range rules.Groups {
		require.NotEmpty(t, g.Name)
		require.False(t, groups[g.Name], "group %s twice", g.Name)
		groups[g.Name] = true
		require.NotEmpty(t, g.Rules, g.Name)
		for _, r := range g.Rules {
			require.Regexp(t, `^Jetsms[A-Z][A-Za-z]+$`, r.Alert)
			require.False(t, alerts[r.Alert], "alert %s twice", r.Alert)
			alerts[r.Alert] = true
			names, err := promqlMetricNames(r.Expr)
			require.NoError(t, err, r.Alert)
			require.NotEmpty(t, names, r.Alert)
			for _, n := range names {
				require.True(t, series[n], "%s: %s is not a series the metrics package registers", r.Alert, n)
				used[n] = true
			}
			d, err := model.ParseDuration(r.For)
			require.NoError(t, err, "%s: for", r.Alert)
			require.Positive(t, time.Duration(d), r.Alert)
			require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			require.NotEmpty(t, r.Annotations["description"], r.Alert)
			for k, text := range r.Annotations {
				// Prometheus defines these variables before an annotation's text.
				const vars = "{{$labels := .}}{{$externalLabels := .}}{{$externalURL := .}}{{$value := .}}"
				_, err := template.New(k).Funcs(funcs).Parse(vars + text)
				require.NoError(t, err, "%s: annotation %s", r.Alert, k)
			}
		}
	}

	// The concerns the rules must watch.
	for concern, name := range map[string]string{
		"gateway errors":         "jetsms_gateway_request_duration_seconds_count",
		"circuit open":           "jetsms_circuit_open",
		"backlog age":            "jetsms_lane_oldest_job_age_seconds",
		"receipt lag":            "jetsms_receipt_lag_seconds_bucket",
		"unmatched receipts":     "jetsms_receipts_total",
		"event publish failures": "jetsms_event_publish_failures_total",
	} {
		require.True(t, used[name], "an alert on %s uses %s", concern, name)
	}
}

// TestScrapeConfig: the Prometheus jobs present the admin listener's credentials
// (the user of the ConfigMap, the password from a file, never in the config) and
// scrape the port the pods announce.
func TestScrapeConfig(t *testing.T) {
	t.Parallel()
	var scrape struct {
		ScrapeConfigs []struct {
			JobName   string `yaml:"job_name"`
			BasicAuth struct {
				Username     string `yaml:"username"`
				Password     string `yaml:"password"`
				PasswordFile string `yaml:"password_file"`
			} `yaml:"basic_auth"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	require.NoError(t, decodeYAML(t, scrapePath)[0].Decode(&scrape))
	require.NotEmpty(t, scrape.ScrapeConfigs)

	var cm k8sData
	readK8s(t).get(t, "ConfigMap", "jetsms-config", &cm)
	file := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(file, []byte(cm.Data["config.yaml"]), 0o600))
	cfg, err := loadConfig(t, []string{"receiver", "--config", file}, map[string]string{
		"JETSMS_GATEWAY_PASSWORD": "gw-test", "JETSMS_CALLBACKS_PASSWORD": "cb-test", "JETSMS_ADMIN_PASSWORD": "adm-test",
	})
	require.NoError(t, err)
	for _, job := range scrape.ScrapeConfigs {
		require.Equal(t, cfg.Admin.Username, job.BasicAuth.Username, "%s: the admin user", job.JobName)
		require.Empty(t, job.BasicAuth.Password, "%s: no password in the file", job.JobName)
		require.NotEmpty(t, job.BasicAuth.PasswordFile, job.JobName)
		for _, sc := range job.StaticConfigs {
			for _, target := range sc.Targets {
				require.Equal(t, admin.ListenDefault, target, "%s: a host's admin listener on loopback", job.JobName)
			}
		}
	}
}
