// Package helm tests the Helm chart in mirror-proxy/ without a cluster:
// helm lint and helm template with the default values and with
// ci/production-values.yaml, every rendered manifest decoded strictly into
// its k8s.io/api type (an unknown field fails), and assertions on what an
// operator relies on.
package helm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

const chart = "mirror-proxy"

func helmBin(t *testing.T) string {
	bin, ok := testenv.LookPath("helm")
	if !ok {
		testenv.Missing(t, "helm", "go install helm.sh/helm/v4/cmd/helm@v4.3.2")
	}
	return bin
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

// serviceMonitor is the part of the Prometheus Operator's type the chart
// writes (the CRD's Go types would bring the operator's module).
type serviceMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// rendered is a chart's manifests, decoded.
type rendered struct {
	Deployments []*appsv1.Deployment
	Services    []*corev1.Service
	ConfigMaps  []*corev1.ConfigMap
	Accounts    []*corev1.ServiceAccount
	Ingresses   []*networkingv1.Ingress
	HPAs        []*autoscalingv2.HorizontalPodAutoscaler
	PDBs        []*policyv1.PodDisruptionBudget
	Monitors    []*serviceMonitor
}

// strict decodes one manifest (as JSON) into v, refusing unknown fields.
func strict(doc []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func render(t *testing.T, args ...string) *rendered {
	t.Helper()
	out, err := helm(t, append([]string{"template", "release", chart}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, out)
	}
	r := &rendered{}
	for _, doc := range strings.Split(out, "\n---") {
		if strings.TrimSpace(strings.ReplaceAll(doc, "---", "")) == "" {
			continue
		}
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("not YAML: %v\n%s", err, doc)
		}
		if string(j) == "null" {
			continue // only comments
		}
		var head struct{ APIVersion, Kind string }
		_ = json.Unmarshal(j, &head)
		var v any
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			d := &appsv1.Deployment{}
			r.Deployments, v = append(r.Deployments, d), d
		case "v1 Service":
			s := &corev1.Service{}
			r.Services, v = append(r.Services, s), s
		case "v1 ConfigMap":
			c := &corev1.ConfigMap{}
			r.ConfigMaps, v = append(r.ConfigMaps, c), c
		case "v1 ServiceAccount":
			a := &corev1.ServiceAccount{}
			r.Accounts, v = append(r.Accounts, a), a
		case "networking.k8s.io/v1 Ingress":
			i := &networkingv1.Ingress{}
			r.Ingresses, v = append(r.Ingresses, i), i
		case "autoscaling/v2 HorizontalPodAutoscaler":
			h := &autoscalingv2.HorizontalPodAutoscaler{}
			r.HPAs, v = append(r.HPAs, h), h
		case "policy/v1 PodDisruptionBudget":
			p := &policyv1.PodDisruptionBudget{}
			r.PDBs, v = append(r.PDBs, p), p
		case "monitoring.coreos.com/v1 ServiceMonitor":
			m := &serviceMonitor{}
			r.Monitors, v = append(r.Monitors, m), m
		default:
			t.Fatalf("a manifest of a kind the test does not know: %s %s", head.APIVersion, head.Kind)
		}
		if err := strict(j, v); err != nil {
			t.Errorf("%s does not decode strictly into its k8s.io/api type: %v\n%s", head.Kind, err, doc)
		}
	}
	return r
}

func (r *rendered) proxy(t *testing.T) *appsv1.Deployment {
	t.Helper()
	for _, d := range r.Deployments {
		if d.Spec.Template.Spec.Containers[0].Name == "mirror-proxy" {
			return d
		}
	}
	t.Fatal("no mirror-proxy Deployment")
	return nil
}

func TestLint(t *testing.T) {
	for _, args := range [][]string{nil, {"-f", chart + "/ci/production-values.yaml"}} {
		if out, err := helm(t, append([]string{"lint", "--strict", chart}, args...)...); err != nil {
			t.Errorf("helm lint %v: %v\n%s", args, err, out)
		}
	}
}

// What every rendering must hold, whatever the values.
func checkCommon(t *testing.T, r *rendered) {
	d := r.proxy(t)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness must ask /healthz (the process only): %+v", c.LivenessProbe)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness must ask /readyz: %+v", c.ReadinessProbe)
	}
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("the pod must run as non-root: %+v", psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("the container must have a read-only root, no privilege escalation, no capabilities: %+v", sc)
	}
	tmp := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/tmp" {
			for _, v := range pod.Volumes {
				if v.Name == m.Name && v.EmptyDir != nil {
					tmp = true
				}
			}
		}
	}
	if !tmp {
		t.Error("/tmp must be an emptyDir (the root filesystem is read-only)")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources: %+v", c.Resources)
	}
	if len(pod.TopologySpreadConstraints) == 0 {
		t.Error("no topology spread")
	}
	// Grace above SHUTDOWN_TIMEOUT.
	if len(r.ConfigMaps) != 1 {
		t.Fatalf("%d ConfigMaps", len(r.ConfigMaps))
	}
	cm := r.ConfigMaps[0]
	var shutdown int64
	fmt.Sscanf(cm.Data["SHUTDOWN_TIMEOUT"], "%ds", &shutdown)
	if shutdown == 0 || pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds <= shutdown {
		t.Errorf("terminationGracePeriodSeconds %v must be above SHUTDOWN_TIMEOUT %q", pod.TerminationGracePeriodSeconds, cm.Data["SHUTDOWN_TIMEOUT"])
	}
	if d.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("no checksum/config annotation: a configuration change would not roll the pods")
	}
	// No secret in the ConfigMap.
	for k, v := range cm.Data {
		if strings.Contains(k, "TOKEN") && k != "AUTH_TOKENS_FILE" || strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD") ||
			strings.Contains(v, "accessKeySecret") || strings.Contains(v, "accessKeyId") || strings.Contains(v, "\"auth\"") ||
			(k == "REDIS_URL" && strings.Contains(v, "@")) {
			t.Errorf("ConfigMap key %s looks like a secret: %q", k, v)
		}
	}
	// PDB and HPA consistent with the replicas.
	replicas := int32(0)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if len(r.HPAs) > 0 {
		h := r.HPAs[0]
		if d.Spec.Replicas != nil {
			t.Error("with an HPA the Deployment must not set replicas (each upgrade would reset them)")
		}
		replicas = *h.Spec.MinReplicas
		if h.Spec.ScaleTargetRef.Name != d.Name || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			t.Errorf("HPA: %+v", h.Spec)
		}
	}
	for _, p := range r.PDBs {
		if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
			t.Errorf("PDB must give exactly one of minAvailable and maxUnavailable: %+v", p.Spec)
		}
		if p.Spec.MinAvailable != nil && p.Spec.MinAvailable.IntValue() >= int(replicas) && p.Spec.MinAvailable.Type == 0 {
			t.Errorf("PDB minAvailable %v with %d replicas: nothing could be evicted", p.Spec.MinAvailable, replicas)
		}
	}
}

func TestDefaultValues(t *testing.T) {
	r := render(t)
	checkCommon(t, r)
	if n := *r.proxy(t).Spec.Replicas; n != 2 {
		t.Errorf("replicas: %d", n)
	}
	if len(r.Ingresses)+len(r.HPAs)+len(r.Monitors) != 0 {
		t.Error("ingress, HPA and ServiceMonitor are off by default")
	}
}

func TestProductionValues(t *testing.T) {
	r := render(t, "-f", chart+"/ci/production-values.yaml")
	checkCommon(t, r)
	d := r.proxy(t)
	c := d.Spec.Template.Spec.Containers[0]
	secretEnv := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			secretEnv[e.Name] = e.ValueFrom.SecretKeyRef.Name
		}
		if e.Value != "" {
			t.Errorf("env %s has a literal value in the pod spec", e.Name)
		}
	}
	for name, secret := range map[string]string{"AWS_ACCESS_KEY_ID": "mirror-proxy-s3", "AWS_SECRET_ACCESS_KEY": "mirror-proxy-s3", "REDIS_URL": "mirror-proxy-redis"} {
		if secretEnv[name] != secret {
			t.Errorf("%s must come from the Secret %s: %v", name, secret, secretEnv)
		}
	}
	cm := r.ConfigMaps[0].Data
	if cm["AUTH_TOKENS_FILE"] == "" || !mounted(d, "mirror-proxy-tokens", cm["AUTH_TOKENS_FILE"]) {
		t.Errorf("the tokens must be a mounted Secret named by AUTH_TOKENS_FILE (%q)", cm["AUTH_TOKENS_FILE"])
	}
	if _, ok := cm["REDIS_URL"]; ok {
		t.Error("REDIS_URL is in the ConfigMap although it comes from a Secret")
	}
	if len(r.HPAs) != 1 || *r.HPAs[0].Spec.MinReplicas != 3 || len(r.PDBs) != 1 || r.PDBs[0].Spec.MinAvailable.IntValue() != 2 {
		t.Error("production: an HPA from 3 replicas and a PDB keeping 2")
	}
	if len(r.Ingresses) != 1 || len(r.Ingresses[0].Spec.TLS) != 1 || len(r.Monitors) != 1 || r.Monitors[0].Spec.Endpoints[0].Path != "/metrics" {
		t.Error("production: an ingress with TLS and a ServiceMonitor of /metrics")
	}
	var mirrors []map[string]any
	if err := json.Unmarshal([]byte(cm["MIRRORS"]), &mirrors); err != nil || len(mirrors) != 3 {
		t.Errorf("MIRRORS: %v %q", err, cm["MIRRORS"])
	}
	if *d.Spec.Template.Spec.TerminationGracePeriodSeconds != 105 {
		t.Errorf("grace: %d, want 90+15", *d.Spec.Template.Spec.TerminationGracePeriodSeconds)
	}
}

func mounted(d *appsv1.Deployment, secret, file string) bool {
	pod := d.Spec.Template.Spec
	for _, v := range pod.Volumes {
		if v.Secret == nil || v.Secret.SecretName != secret {
			continue
		}
		for _, m := range pod.Containers[0].VolumeMounts {
			if m.Name == v.Name && strings.HasPrefix(file, m.MountPath+"/") {
				return true
			}
		}
	}
	return false
}

// A change of configuration changes the pods' checksum (so they roll).
func TestConfigChangeRollsPods(t *testing.T) {
	a := render(t).proxy(t).Spec.Template.Annotations["checksum/config"]
	b := render(t, "--set", "env.COOLDOWN=3d").proxy(t).Spec.Template.Annotations["checksum/config"]
	if a == b {
		t.Error("the checksum did not change with the configuration")
	}
}

// Values that would make a broken or unsafe release fail the render
// with a message.
func TestRefusedValues(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "podDisruptionBudget.minAvailable=1"}, "not both"},
		{[]string{"--set", "podDisruptionBudget.minAvailable=2,podDisruptionBudget.maxUnavailable=null"}, "must be below the replicas"},
		{[]string{"--set", "env.AUTH_TOKENS=secret"}, "existingSecret"},
		{[]string{"--set", "redis.url=redis://:pw@redis:6379/0"}, "redis"},
		{[]string{"--set", "storage.source=local"}, "one pod"},
		{[]string{"--set", "autoscaling.enabled=true,autoscaling.minReplicas=5,autoscaling.maxReplicas=3"}, "minReplicas"},
		{[]string{"--set", "unknownValue=1"}, "unknownValue"},
	} {
		out, err := helm(t, append([]string{"template", "release", chart}, c.args...)...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("helm template %v: want a failure naming %q, got %v\n%s", c.args, c.want, err, out)
		}
	}
}

// The bundled Redis is off by default and labelled as a trial when on;
// the proxy is pointed at it.
func TestBundledRedis(t *testing.T) {
	r := render(t, "--set", "redis.bundled.enabled=true")
	checkCommon(t, r)
	if len(r.Deployments) != 2 || r.ConfigMaps[0].Data["REDIS_URL"] != "redis://release-mirror-proxy-redis:6379/0" {
		t.Errorf("bundled Redis: %d deployments, REDIS_URL %q", len(r.Deployments), r.ConfigMaps[0].Data["REDIS_URL"])
	}
	for _, d := range r.Deployments {
		if d.Name != "release-mirror-proxy-redis" {
			continue
		}
		if d.Labels["app.kubernetes.io/component"] != "redis-for-trying-out" {
			t.Error("the bundled Redis is not labelled as a trial")
		}
		// The proxy's Service, Deployment and PDB must not select Redis's pods.
		pods := d.Spec.Template.Labels
		selects := func(sel map[string]string) bool {
			for k, v := range sel {
				if pods[k] != v {
					return false
				}
			}
			return true
		}
		for _, s := range r.Services {
			if s.Name == "release-mirror-proxy" && selects(s.Spec.Selector) {
				t.Error("the proxy's Service selects the Redis pod")
			}
		}
		if selects(r.proxy(t).Spec.Selector.MatchLabels) || selects(r.PDBs[0].Spec.Selector.MatchLabels) {
			t.Error("the proxy's Deployment or PDB selects the Redis pod")
		}
	}
}

// The README's Kubernetes section installs the chart with three replicas
// and the S3, Redis and token Secrets: its helm install command, run as
// helm template, renders that.
func TestREADMEInstall(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "helm install mirror-proxy deploy/helm/mirror-proxy")
	if i < 0 {
		t.Fatal("the README has no helm install command")
	}
	cmd := readme[i:]
	cmd = cmd[:strings.Index(cmd, "\n```")]
	cmd = strings.ReplaceAll(cmd, "\\\n", " ")
	args := strings.Fields(cmd)[4:] // after "helm install mirror-proxy deploy/helm/mirror-proxy"
	r := render(t, args...)
	checkCommon(t, r)
	d := r.proxy(t)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("replicas: %v, want 3", d.Spec.Replicas)
	}
	secrets := map[string]bool{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			secrets[e.Name+"<-"+e.ValueFrom.SecretKeyRef.Name] = true
		}
	}
	for _, want := range []string{"AWS_ACCESS_KEY_ID<-mirror-proxy-s3", "AWS_SECRET_ACCESS_KEY<-mirror-proxy-s3", "REDIS_URL<-mirror-proxy-redis"} {
		if !secrets[want] {
			t.Errorf("the README's install lacks %s: %v", want, secrets)
		}
	}
	if !mounted(d, "mirror-proxy-tokens", r.ConfigMaps[0].Data["AUTH_TOKENS_FILE"]) {
		t.Error("the README's install does not mount the tokens Secret")
	}
}
