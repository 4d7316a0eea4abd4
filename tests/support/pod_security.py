"""The Kubernetes Pod Security Standards, Baseline and Restricted, as checks on a pod spec.

No implementation of the standard exists on PyPI (the reference one is the Go module
k8s.io/pod-security-admission, behind the API server's PodSecurity admission), so the
controls are encoded here as the Kubernetes documentation states them:
https://kubernetes.io/docs/concepts/security/pod-security-standards/ ("Baseline" and
"Restricted" tables; the policy version "latest", Kubernetes 1.35). Each check is named
with the control's name in that page and the check ID pod-security-admission gives it
(policy/check_*.go), and says the restricted fields and allowed values it enforces.

    violations(pod_spec, pod_metadata)            # [] when the pod passes Restricted
    violations(pod_spec, pod_metadata, "baseline")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

Check = Callable[[dict, dict], list[str]]


def _containers(spec: dict) -> Iterator[tuple[str, dict]]:
    """Every container the standard looks at: containers, initContainers, ephemeralContainers."""
    for field in ("containers", "initContainers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            yield f"{field}[{container.get('name')}]", container


def _security(obj: dict) -> dict:
    return obj.get("securityContext") or {}


# --- Baseline ------------------------------------------------------------------------------


def host_process(spec: dict, _meta: dict) -> list[str]:
    """HostProcess (windowsHostProcess): spec.securityContext.windowsOptions.hostProcess and the
    containers' must be false or undefined."""
    found = []
    if (_security(spec).get("windowsOptions") or {}).get("hostProcess"):
        found.append("spec.securityContext.windowsOptions.hostProcess")
    found += [f"{where}.securityContext.windowsOptions.hostProcess" for where, c in _containers(spec)
              if (_security(c).get("windowsOptions") or {}).get("hostProcess")]
    return found


def host_namespaces(spec: dict, _meta: dict) -> list[str]:
    """Host Namespaces (hostNamespaces): spec.hostNetwork, hostPID, hostIPC false or undefined."""
    return [f"spec.{field}" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]


def privileged(spec: dict, _meta: dict) -> list[str]:
    """Privileged Containers (privileged): securityContext.privileged false or undefined."""
    return [f"{where}.securityContext.privileged" for where, c in _containers(spec)
            if _security(c).get("privileged")]


BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def capabilities_baseline(spec: dict, _meta: dict) -> list[str]:
    """Capabilities (capabilities_baseline): securityContext.capabilities.add only from the
    default set (AUDIT_WRITE, CHOWN, ..., SYS_CHROOT); NET_RAW and anything else is refused."""
    return [f"{where}.securityContext.capabilities.add: {cap}" for where, c in _containers(spec)
            for cap in (_security(c).get("capabilities") or {}).get("add") or []
            if cap not in BASELINE_CAPABILITIES]


def host_path_volumes(spec: dict, _meta: dict) -> list[str]:
    """HostPath Volumes (hostPathVolumes): spec.volumes[*].hostPath undefined."""
    return [f"spec.volumes[{v.get('name')}].hostPath" for v in spec.get("volumes") or [] if "hostPath" in v]


def host_ports(spec: dict, _meta: dict) -> list[str]:
    """Host Ports (hostPorts): ports[*].hostPort undefined or 0 (no list of known ports is set)."""
    return [f"{where}.ports[{p.get('name') or p.get('containerPort')}].hostPort"
            for where, c in _containers(spec) for p in c.get("ports") or [] if p.get("hostPort")]


def host_probes(spec: dict, _meta: dict) -> list[str]:
    """Host Probes / Lifecycle Hooks (hostProbesAndHostLifecycle, 1.34+): the host field of
    httpGet and tcpSocket in probes and lifecycle handlers "" or undefined."""
    found = []
    for where, container in _containers(spec):
        handlers = {name: container.get(name) for name in ("livenessProbe", "readinessProbe", "startupProbe")}
        lifecycle = container.get("lifecycle") or {}
        handlers.update({f"lifecycle.{name}": lifecycle.get(name) for name in ("postStart", "preStop")})
        for name, handler in handlers.items():
            for kind in ("httpGet", "tcpSocket"):
                if ((handler or {}).get(kind) or {}).get("host"):
                    found.append(f"{where}.{name}.{kind}.host")
    return found


def app_armor(spec: dict, meta: dict) -> list[str]:
    """AppArmor (appArmorProfile): securityContext.appArmorProfile.type of the pod and containers
    RuntimeDefault, Localhost or undefined; the annotations
    container.apparmor.security.beta.kubernetes.io/* runtime/default, localhost/* or undefined."""
    found = []
    places = [("spec", spec), *_containers(spec)]
    for where, obj in places:
        kind = (_security(obj).get("appArmorProfile") or {}).get("type")
        if kind not in (None, "RuntimeDefault", "Localhost"):
            found.append(f"{where}.securityContext.appArmorProfile.type: {kind}")
    for key, value in (meta.get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and value and \
                value != "runtime/default" and not value.startswith("localhost/"):
            found.append(f"metadata.annotations[{key}]: {value}")
    return found


SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def selinux(spec: dict, _meta: dict) -> list[str]:
    """SELinux (seLinuxOptions): seLinuxOptions.type one of container_t, container_init_t,
    container_kvm_t, container_engine_t or undefined; .user and .role undefined."""
    found = []
    for where, obj in [("spec", spec), *_containers(spec)]:
        options = _security(obj).get("seLinuxOptions") or {}
        if options.get("type", "") not in SELINUX_TYPES:
            found.append(f"{where}.securityContext.seLinuxOptions.type")
        found += [f"{where}.securityContext.seLinuxOptions.{k}" for k in ("user", "role") if options.get(k)]
    return found


def proc_mount(spec: dict, _meta: dict) -> list[str]:
    """/proc Mount Type (procMount_baseline): securityContext.procMount Default or undefined."""
    return [f"{where}.securityContext.procMount" for where, c in _containers(spec)
            if _security(c).get("procMount") not in (None, "Default")]


def seccomp_baseline(spec: dict, _meta: dict) -> list[str]:
    """Seccomp (seccompProfile_baseline): seccompProfile.type not Unconfined."""
    places = [("spec", spec), *_containers(spec)]
    return [f"{where}.securityContext.seccompProfile.type" for where, obj in places
            if (_security(obj).get("seccompProfile") or {}).get("type") == "Unconfined"]


SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem",
                "net.ipv4.tcp_wmem", "net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"}


def sysctls(spec: dict, _meta: dict) -> list[str]:
    """Sysctls (sysctls): spec.securityContext.sysctls[*].name only from the safe subset."""
    return [f"spec.securityContext.sysctls: {s.get('name')}" for s in _security(spec).get("sysctls") or []
            if s.get("name") not in SAFE_SYSCTLS]


# --- Restricted (everything in Baseline, and these) ----------------------------------------

RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret", "image"}


def volume_types(spec: dict, _meta: dict) -> list[str]:
    """Volume Types (restrictedVolumes): every volume one of configMap, csi, downwardAPI,
    emptyDir, ephemeral, persistentVolumeClaim, projected, secret, image."""
    return [f"spec.volumes[{v.get('name')}]: {kind}" for v in spec.get("volumes") or []
            for kind in v if kind != "name" and kind not in RESTRICTED_VOLUMES]


def privilege_escalation(spec: dict, _meta: dict) -> list[str]:
    """Privilege Escalation (allowPrivilegeEscalation): securityContext.allowPrivilegeEscalation
    must be set to false on every container (undefined is refused)."""
    return [f"{where}.securityContext.allowPrivilegeEscalation" for where, c in _containers(spec)
            if _security(c).get("allowPrivilegeEscalation") is not False]


def run_as_non_root(spec: dict, _meta: dict) -> list[str]:
    """Running as Non-root (runAsNonRoot): runAsNonRoot true on the pod, or on every container
    that does not get it from the pod; never false."""
    pod = _security(spec).get("runAsNonRoot")
    found = ["spec.securityContext.runAsNonRoot"] if pod is False else []
    for where, container in _containers(spec):
        mine = _security(container).get("runAsNonRoot")
        if mine is False or (mine is None and pod is not True):
            found.append(f"{where}.securityContext.runAsNonRoot")
    return found


def run_as_user(spec: dict, _meta: dict) -> list[str]:
    """Running as Non-root user (runAsUser): runAsUser of the pod and containers not 0."""
    return [f"{where}.securityContext.runAsUser" for where, obj in [("spec", spec), *_containers(spec)]
            if _security(obj).get("runAsUser") == 0]


def seccomp_restricted(spec: dict, _meta: dict) -> list[str]:
    """Seccomp (seccompProfile_restricted): seccompProfile.type RuntimeDefault or Localhost on
    the pod, or on every container that does not get it from the pod; never another value."""
    allowed = ("RuntimeDefault", "Localhost")
    pod = (_security(spec).get("seccompProfile") or {}).get("type")
    found = ["spec.securityContext.seccompProfile.type"] if pod is not None and pod not in allowed else []
    for where, container in _containers(spec):
        mine = (_security(container).get("seccompProfile") or {}).get("type")
        if (mine is not None and mine not in allowed) or (mine is None and pod not in allowed):
            found.append(f"{where}.securityContext.seccompProfile.type")
    return found


def capabilities_restricted(spec: dict, _meta: dict) -> list[str]:
    """Capabilities (capabilities_restricted): every container drops ALL, and adds at most
    NET_BIND_SERVICE."""
    found = []
    for where, container in _containers(spec):
        caps = _security(container).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"{where}.securityContext.capabilities.drop must include ALL")
        found += [f"{where}.securityContext.capabilities.add: {cap}" for cap in caps.get("add") or []
                  if cap != "NET_BIND_SERVICE"]
    return found


BASELINE: dict[str, Check] = {
    "HostProcess": host_process, "Host Namespaces": host_namespaces, "Privileged Containers": privileged,
    "Capabilities (baseline)": capabilities_baseline, "HostPath Volumes": host_path_volumes,
    "Host Ports": host_ports, "Host Probes / Lifecycle Hooks": host_probes, "AppArmor": app_armor,
    "SELinux": selinux, "/proc Mount Type": proc_mount, "Seccomp (baseline)": seccomp_baseline,
    "Sysctls": sysctls,
}
RESTRICTED: dict[str, Check] = {
    **BASELINE, "Volume Types": volume_types, "Privilege Escalation": privilege_escalation,
    "Running as Non-root": run_as_non_root, "Running as Non-root user": run_as_user,
    "Seccomp (restricted)": seccomp_restricted, "Capabilities (restricted)": capabilities_restricted,
}


def violations(spec: dict, meta: dict | None = None, level: str = "restricted") -> list[str]:
    """"control: field" for every control of ``level`` the pod spec breaks; [] when it passes."""
    checks = RESTRICTED if level == "restricted" else BASELINE
    return [f"{control}: {field}" for control, check in checks.items() for field in check(spec, meta or {})]
