//! Redis Cluster mode against a real three-master cluster on loopback.

use serde_json::json;
use testkit::gateway::Gateway;
use testkit::redis::Redis;

struct Cluster {
    nodes: Vec<Redis>,
}

impl Cluster {
    fn start() -> Cluster {
        Cluster {
            nodes: testkit::cluster::start(3, 0, 2000),
        }
    }

    fn node_of(&self, key: &str) -> &Redis {
        let slot: u16 = self.nodes[0]
            .cli(&["CLUSTER", "KEYSLOT", key])
            .parse()
            .unwrap();
        self.nodes
            .iter()
            .find(|n| {
                let nodes = n.cli(&["CLUSTER", "NODES"]);
                let me = nodes
                    .lines()
                    .find(|l| l.contains("myself"))
                    .unwrap()
                    .to_string();
                me.split_whitespace()
                    .skip(8)
                    .any(|r| match r.split_once('-') {
                        Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).contains(&slot),
                        None => r.parse::<u16>().ok() == Some(slot),
                    })
            })
            .expect("slot owner")
    }
}

fn gateway(c: &Cluster) -> Gateway {
    Gateway::with_tokens(&c.nodes[0].url(), &["--cluster"])
}

#[test]
fn cluster_mode() {
    let c = Cluster::start();
    let g = gateway(&c);

    // Keys spread over every node; single commands and one mixed pipeline.
    for i in 0..60 {
        let res = g.post("/", &format!(r#"["SET","key{i}","v{i}"]"#));
        assert_eq!(res.json(), json!({"result": "OK"}), "key{i}");
    }
    for n in &c.nodes {
        assert!(
            n.cli(&["DBSIZE"]).parse::<u32>().unwrap() > 5,
            "keys not spread"
        );
    }
    let cmds: Vec<String> = (0..60).map(|i| format!(r#"["GET","key{i}"]"#)).collect();
    let v = g.post("/pipeline", &format!("[{}]", cmds.join(","))).json();
    for i in 0..60 {
        assert_eq!(v[i], json!({"result": format!("v{i}")}));
    }
    assert_eq!(g.get("/get/key7").json(), json!({"result": "v7"}));
    let res = g.post("/", r#"["MSET","a","1","b","2"]"#);
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("CROSSSLOT"));
    assert_eq!(g.post("/", r#"["MSET","{u}a","1","{u}b","2"]"#).status, 200);

    // Transactions run on the node owning their one slot.
    let v = g
        .post(
            "/multi-exec",
            r#"[["INCR","{t}x"],["INCR","{t}x"],["GET","{t}x"]]"#,
        )
        .json();
    assert_eq!(v, json!([{"result": 1}, {"result": 2}, {"result": "2"}]));
    let res = g.post("/multi-exec", r#"[["INCR","a"],["INCR","b"]]"#);
    assert_eq!(res.status, 400);
    assert!(res.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("CROSSSLOT"));

    // Shebang scripts: loaded on every master, EVALSHA by original SHA
    // wherever the key lives.
    let script = "#!lua flags=allow-key-locking\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])";
    let body = serde_json::to_string(&["SCRIPT", "LOAD", script]).unwrap();
    let sha = g.post("/", &body).json()["result"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..20 {
        let b = format!(r#"["EVALSHA","{sha}","1","counter{i}","5"]"#);
        assert_eq!(g.post("/", &b).json(), json!({"result": 5}), "counter{i}");
    }
    let b = format!(r#"["SCRIPT","EXISTS","{sha}"]"#);
    assert_eq!(g.post("/", &b).json(), json!({"result": [1]}));
    let b = format!(r#"["EVALSHA","{sha}","2","a","b","1"]"#);
    assert!(g.post("/", &b).json()["error"]
        .as_str()
        .unwrap()
        .starts_with("CROSSSLOT"));

    // Health follows the cluster.
    assert_eq!(g.request("GET", "/healthz", &[], b"").status, 200);
}

#[test]
fn cluster_follows_moved_slots() {
    let c = Cluster::start();
    let g = gateway(&c);
    // The gateway learns the slot map with a first request.
    assert_eq!(
        g.post("/", r#"["GET","moving"]"#).json(),
        json!({"result": null})
    );

    // Hand the (empty) slot of "moving" to another master behind the
    // gateway's back.
    let from = c.node_of("moving");
    let to = c.nodes.iter().find(|n| n.port != from.port).unwrap();
    let to_id = to.cli(&["CLUSTER", "MYID"]);
    let from_id = from.cli(&["CLUSTER", "MYID"]);
    let slot = from.cli(&["CLUSTER", "KEYSLOT", "moving"]);
    // The documented order: the new owner imports first, so its SETSLOT
    // NODE bumps its config epoch and gossip from the old owner cannot
    // hand the slot back (which would leave the two nodes redirecting to
    // each other).
    let importing = ["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id];
    assert_eq!(to.cli(&importing), "OK");
    let migrating = ["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id];
    assert_eq!(from.cli(&migrating), "OK");
    for n in std::iter::once(to).chain(c.nodes.iter().filter(|n| n.port != to.port)) {
        assert_eq!(n.cli(&["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]), "OK");
    }

    // Stale map: MOVED is followed and the write lands on the new owner.
    assert_eq!(
        g.post("/", r#"["SET","moving","here"]"#).json(),
        json!({"result": "OK"})
    );
    assert_eq!(to.cli(&["GET", "moving"]), "here");
    let v = g
        .post("/pipeline", r#"[["GET","moving"],["GET","key1"]]"#)
        .json();
    assert_eq!(v[0], json!({"result": "here"}));
    let v = g.post("/multi-exec", r#"[["GET","moving"]]"#).json();
    assert_eq!(v, json!([{"result": "here"}]));
}

#[test]
fn refusals_for_now_are_retryable() {
    let c = Cluster::start();
    let g = gateway(&c);
    assert_eq!(g.post("/", r#"["SET","orphan","1"]"#).status, 200);

    // The slot of "orphan" loses its owner: the cluster refuses it (and,
    // requiring full coverage, soon every slot) with CLUSTERDOWN.
    let owner = c.node_of("orphan");
    let slot = owner.cli(&["CLUSTER", "KEYSLOT", "orphan"]);
    assert_eq!(owner.cli(&["CLUSTER", "DELSLOTS", &slot]), "OK");

    // A command: 503, a refusal the client may send again; in a pipeline,
    // that entry's error.
    let res = g.post("/", r#"["SET","orphan","2"]"#);
    assert_eq!(res.status, 503, "{:?}", res.json());
    let error = res.json()["error"].as_str().unwrap().to_string();
    assert!(error.starts_with("CLUSTERDOWN"), "{error}");
    let v = g.post("/pipeline", r#"[["SET","orphan","3"]]"#);
    assert_eq!(v.status, 200);
    let error = v.json()[0]["error"].as_str().unwrap().to_string();
    assert!(error.starts_with("CLUSTERDOWN"), "{error}");
}
