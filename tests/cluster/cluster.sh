# Sourced by tests/cluster/run.sh: a two-host Slurm cluster on this machine, made of network
# namespaces. Each host is one long-lived "anchor" process in its own network, UTS and mount
# namespaces (hostname, /etc/hosts, /etc/resolv.conf, /tmp and /dev/shm of its own: PMIx and Open MPI keep per-host
# session files there); `on_host HOST CMD...` runs a command inside it. A veth pair on
# $CLUSTER_SUBNET joins the two hosts and nothing else: the root namespace has no address on it
# and no route to it, so all cluster traffic stays between the hosts (and their loopback).
# munged runs in the root namespace, reached through a Unix socket file, not the network.
# Every daemon is started by PID and stopped by PID in cluster_down.

CLUSTER_HOSTS=(node1 node2)
CLUSTER_PREFIX=10.77.13             # the /24 between the two hosts: node1 .1, node2 .2
CLUSTER_SUBNET=$CLUSTER_PREFIX.0/24
CLUSTER_NETNS_PREFIX=dae-cluster-$$ # unique per run: two runs never share a namespace

declare -A CLUSTER_ANCHOR           # host -> PID of the anchor process
CLUSTER_PIDS=()                     # every daemon we started, stopped in reverse order

cluster_log() { echo "cluster: $*"; }

# Debian's Slurm and munge, once per machine.
cluster_install() {
  command -v slurmctld > /dev/null && command -v slurmd > /dev/null && command -v munged > /dev/null &&
    return 0
  cluster_log "installing slurm-wlm and munge from Debian"
  apt-get update -q > /dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge \
    > /dev/null
}

on_host() {
  local host=$1
  shift
  nsenter --target "${CLUSTER_ANCHOR[$host]}" --net --uts --mount --wd="$PWD" -- "$@"
}

# cluster_wait SECONDS COMMAND...: polls COMMAND every 0.5 s until it succeeds; 1 on timeout.
cluster_wait() {
  local seconds=$1 i
  shift
  for ((i = 0; i < seconds * 2; i++)); do "$@" > /dev/null 2>&1 && return 0; sleep 0.5; done
  return 1
}

# The /tmp/<name> folders that hold the repository, the build or the cluster dir, one a line.
_cluster_under_tmp() {
  local path
  for path in "$DAE_ROOT" "$DAE_BUILD" "$CLUSTER_DIR"; do
    path=$(realpath -m "$path")
    case $path in /tmp/?*) echo "/tmp/$(echo "$path" | cut -d/ -f3)" ;; esac
  done | sort -u
}

_cluster_make_hosts() {
  local i host ns keep
  keep=$(_cluster_under_tmp)
  if [ "$(echo "$keep" | wc -w)" -gt 1 ]; then
    cluster_log "the repository, the build and the cluster dir lie in different folders of /tmp" \
      "($(echo $keep)): each host has a /tmp of its own, which can show only one of them"
    return 1
  fi
  printf '127.0.0.1 localhost\n' > "$CLUSTER_DIR/hosts"
  # No name server inside the hosts: a name that is not in their /etc/hosts fails at once,
  # and no lookup is ever sent towards the machine's own resolver.
  printf 'nameserver 127.0.0.1\n' > "$CLUSTER_DIR/resolv.conf"
  for i in 1 2; do printf '%s.%d node%d\n' "$CLUSTER_PREFIX" "$i" "$i" >> "$CLUSTER_DIR/hosts"; done
  for i in 1 2; do ip netns add "$CLUSTER_NETNS_PREFIX-$i"; done
  ip link add "dae$$a" type veth peer name "dae$$b"
  ip link set "dae$$a" netns "$CLUSTER_NETNS_PREFIX-1"
  ip link set "dae$$b" netns "$CLUSTER_NETNS_PREFIX-2"
  for i in 1 2; do
    host=node$i ns=$CLUSTER_NETNS_PREFIX-$i
    local dev=dae$$$([ "$i" = 1 ] && echo a || echo b)
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$CLUSTER_PREFIX.$i/24" dev "$dev"
    ip -n "$ns" link set "$dev" up
    mkdir -p "$CLUSTER_DIR/$host/tmp"
    # The anchor: hostname, /etc/hosts, /tmp and /dev/shm of this host, then it waits to be
    # entered (nsenter) and killed by cluster_down. --propagation private: our mounts never
    # reach the machine's own mount table. Where the repository, the build and DIR lie under
    # /tmp (a CI checkout), the host's own /tmp would hide them: that /tmp/<name> is bound back
    # into it, through the working directory, which still reaches the machine's /tmp.
    nsenter --net=/run/netns/"$ns" -- unshare --uts --mount --propagation private bash -c '
      hostname "$1" && mount --bind "$2/hosts" /etc/hosts &&
        mount --bind "$2/resolv.conf" /etc/resolv.conf || exit 1
      if [ -n "$3" ]; then cd "$3" || exit 1; fi
      mount --bind "$2/$1/tmp" /tmp || exit 1
      # -c: "." goes to the kernel as it is (mount would canonicalise it to the hidden path).
      if [ -n "$3" ]; then mkdir -p "$3" && mount -c --bind . "$3" && cd / || exit 1; fi
      mount -t tmpfs -o size=256m tmpfs /dev/shm && touch "$2/$1/ready" && exec sleep infinity
    ' anchor "$host" "$CLUSTER_DIR" "$keep" &
    CLUSTER_ANCHOR[$host]=$!
    CLUSTER_PIDS+=($!)
    echo $! > "$CLUSTER_DIR/$host/anchor.pid"
  done
  for host in "${CLUSTER_HOSTS[@]}"; do
    cluster_wait 10 test -e "$CLUSTER_DIR/$host/ready" || { cluster_log "$host did not start"; return 1; }
    # The anchor is `sleep` now (exec): its namespaces are the host's.
  done
}

_cluster_write_conf() {
  local state=$CLUSTER_DIR/state
  mkdir -p "$state" "$CLUSTER_DIR/log" "$CLUSTER_DIR/spool/node1" "$CLUSTER_DIR/spool/node2"
  # 4 CPUs per node whatever this machine has (config_overrides): the scenarios' sizes stay the
  # same on any CI machine; dae_dist's ranks oversubscribe the cores, which is fine here.
  cat > "$CLUSTER_DIR/slurm.conf" <<CONF
ClusterName=daetest
SlurmctldHost=node1($CLUSTER_PREFIX.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job may start again only after its old credential expired (120 s by
# default); 10 s keeps the preemption scenario short.
AuthInfo=socket=$CLUSTER_DIR/munge.socket,cred_expire=10
StateSaveLocation=$state
SlurmdSpoolDir=$CLUSTER_DIR/spool/%n
SlurmctldPidFile=$CLUSTER_DIR/slurmctld.pid
SlurmdPidFile=$CLUSTER_DIR/slurmd-%n.pid
SlurmctldLogFile=$CLUSTER_DIR/log/slurmctld.log
SlurmdLogFile=$CLUSTER_DIR/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in a container: processes tracked by parentage, no task affinity (the case where
# --cpu-bind=cores used to print an error).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Pending jobs looked at every second or two (defaults 30 and 60 s): a requeued job, eligible
# again once cred_expire passed, starts at once.
SchedulerParameters=bf_interval=1,sched_interval=2
SlurmdParameters=config_overrides
ReturnToService=2
# Short timers: the scenarios wait for the ends of jobs.
KillWait=10
MinJobAge=600
InactiveLimit=0
SlurmdTimeout=30
MessageTimeout=10
NodeName=node1 NodeAddr=$CLUSTER_PREFIX.1 CPUs=4 Boards=1 SocketsPerBoard=1 CoresPerSocket=4 ThreadsPerCore=1 RealMemory=4000 State=UNKNOWN
NodeName=node2 NodeAddr=$CLUSTER_PREFIX.2 CPUs=4 Boards=1 SocketsPerBoard=1 CoresPerSocket=4 ThreadsPerCore=1 RealMemory=4000 State=UNKNOWN
PartitionName=test Nodes=node1,node2 Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$CLUSTER_DIR/slurm.conf
}

# cluster_up DIR: makes the hosts and starts munged, slurmctld and the two slurmd in DIR.
cluster_up() {
  CLUSTER_DIR=$1
  mkdir -p "$CLUSTER_DIR"
  _cluster_make_hosts || return 1
  _cluster_write_conf
  dd if=/dev/urandom of="$CLUSTER_DIR/munge.key" bs=1024 count=1 status=none
  chmod 400 "$CLUSTER_DIR/munge.key"
  # --origin: no look-up of this machine's own name.
  munged --foreground --force --origin=127.0.0.1 --key-file="$CLUSTER_DIR/munge.key" \
    --socket="$CLUSTER_DIR/munge.socket" --pid-file="$CLUSTER_DIR/munged.pid" \
    --log-file="$CLUSTER_DIR/log/munged.log" --seed-file="$CLUSTER_DIR/munge.seed" \
    2> "$CLUSTER_DIR/log/munged.out" &
  CLUSTER_PIDS+=($!)
  cluster_wait 10 test -S "$CLUSTER_DIR/munge.socket" || { cluster_log "munged did not start"; return 1; }
  on_host node1 slurmctld -D -i -f "$SLURM_CONF" > "$CLUSTER_DIR/log/slurmctld.out" 2>&1 &
  CLUSTER_PIDS+=($!)
  local host
  for host in "${CLUSTER_HOSTS[@]}"; do
    on_host "$host" slurmd -D -N "$host" -f "$SLURM_CONF" > "$CLUSTER_DIR/log/slurmd-$host.out" 2>&1 &
    CLUSTER_PIDS+=($!)
  done
  if ! cluster_wait 60 _cluster_nodes_idle; then
    cluster_log "the nodes did not become idle:"
    on_host node1 sinfo -N 2>&1
    tail -n 20 "$CLUSTER_DIR"/log/*.log
    return 1
  fi
  cluster_log "up: $(on_host node1 sinfo -h -N -o '%N %t %c' | tr '\n' ' ')"
}

_cluster_nodes_idle() {
  [ "$(on_host node1 sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l)" = 2 ]
}

# Stops every process we started (daemons, anchors, and whatever still runs in a host's network
# namespace, such as a job's ranks), by PID, then removes the namespaces.
cluster_down() {
  local i pid ns
  for ((i = ${#CLUSTER_PIDS[@]} - 1; i >= 0; i--)); do kill "${CLUSTER_PIDS[i]}" 2>/dev/null; done
  for i in 1 2; do
    ns=$CLUSTER_NETNS_PREFIX-$i
    ip netns list 2>/dev/null | grep -q "^$ns\b" || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
  for pid in "${CLUSTER_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  for i in 1 2; do ip netns del "$CLUSTER_NETNS_PREFIX-$i" 2>/dev/null; done
  CLUSTER_PIDS=()
}
