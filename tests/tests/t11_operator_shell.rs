//! The shell as an operator uses it against real processes: table life cycle, listings in text,
//! JSON and to a file, every data command, `app_stat`, `recall` of a dropped table, and errors that
//! name the problem.

use aerie_tests::{wait_fully_healthy, wait_until, ProcessCluster, ProcessClusterOptions};
use std::time::Duration;

fn assert_lines(text: &str, expected: &[&str]) {
    for line in expected {
        assert!(
            text.lines().any(|l| l.trim_end() == *line),
            "missing line {line:?} in:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_session() {
    let cluster = ProcessCluster::start(ProcessClusterOptions::default());
    let client = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&client, Duration::from_secs(30)).await;

    let out = cluster.shell_exec("create orders -p 4 -r 3");
    assert!(out.success, "{out:?}");
    assert!(out.stdout.contains("create app \"orders\" succeed"), "{out:?}");
    let again = cluster.shell_exec("create orders -p 4");
    assert!(!again.success && again.stderr.contains("ERR_APP_EXIST"), "{again:?}");
    let bad = cluster.shell_exec("create odd -p 3");
    assert!(!bad.success && bad.stderr.contains("power of two"), "{bad:?}");
    let too_many = cluster.shell_exec("create wide -p 4 -r 5");
    assert!(
        !too_many.success
            && too_many
                .stderr
                .contains("needs 5 alive replica servers, but 3 are alive"),
        "{too_many:?}"
    );

    // Listings.
    let nodes = cluster.shell_exec("nodes -d");
    assert!(nodes.success, "{nodes:?}");
    assert!(nodes.stdout.starts_with("[details]\naddress"), "{}", nodes.stdout);
    for addr in &cluster.replica_addrs {
        let row = nodes
            .stdout
            .lines()
            .find(|l| l.starts_with(&addr.to_string()))
            .expect("node row");
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1..], ["ALIVE", "4", cells[3], cells[4], "-"], "{row}");
    }
    assert_lines(
        &nodes.stdout,
        &[
            "total_node_count   : 3",
            "alive_node_count   : 3",
            "unalive_node_count : 0",
        ],
    );

    let ls = cluster.shell_exec("ls -d");
    assert!(ls.stdout.contains("[healthy_info]"), "{}", ls.stdout);
    let healthy_row = ls
        .stdout
        .lines()
        .find(|l| l.contains("orders") && !l.contains("AVAILABLE"))
        .unwrap();
    assert_eq!(
        healthy_row.split_whitespace().collect::<Vec<_>>()[2..],
        ["4", "4", "0", "0", "0"]
    );

    let file = cluster.data_dir().join("nodes.json");
    let out = cluster.shell_exec(&format!("nodes -d -j -o {}", file.display()));
    assert!(out.success && out.stdout.contains("output written to"), "{out:?}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(json["summary"]["alive_node_count"], "3");
    assert_eq!(json["details"].as_array().unwrap().len(), 3);

    let app = cluster.shell_exec("app orders -d");
    assert_lines(
        &app.stdout,
        &[
            "app_name          : orders",
            "partition_count   : 4",
            "fully_healthy_partition_count   : 4",
        ],
    );
    assert_eq!(
        app.stdout.lines().filter(|l| l.contains("3/3")).count(),
        4,
        "{}",
        app.stdout
    );

    let info = cluster.shell_exec("cluster_info -j");
    let json: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(
        json["cluster_info"]["primary_meta_server"],
        cluster.meta_addr.to_string()
    );
    assert_eq!(json["cluster_info"]["meta_function_level"], "fl_steady");

    // Data commands, read from standard input as a script.
    let script = r#"
use orders
set alice profile "hello world"
get alice profile
multi_set alice a 1 b 2 c 3
multi_get alice a c
multi_get alice
incr alice counter 5
incr alice counter -2
multi_del alice a b
scan alice
ttl alice profile
del alice c
get alice c
set bin \x00\xff "v\n"
get bin \x00\xff
count_data
check_and_set alice -c lock -t not_exist -v owner1 -r
check_and_set alice -c lock -t not_exist -v owner2 -r
sortkey_count alice
set alice temp gone 1
"#;
    let out = cluster.shell(&[], script);
    assert!(out.success, "{out:?}");
    let stdout = &out.stdout;
    assert!(stdout.contains("\"hello world\""), "{stdout}");
    assert!(
        stdout.contains("\"alice\" : \"a\" => \"1\"\n\"alice\" : \"c\" => \"3\"\n\n2 key-value pairs got."),
        "{stdout}"
    );
    assert_lines(
        stdout,
        &[
            "5",
            "3",
            "OK, 2 sort keys deleted",
            "Infinite",
            "Not found",
            "\"v\\n\"",
            "row_count : 3",
        ],
    );
    assert!(stdout.contains("\"alice\" : \"counter\" => \"3\""), "{stdout}");
    assert_lines(
        stdout,
        &[
            "Set succeed.",
            "Set failed, because check not passed.",
            "Check value: \"owner1\"",
            "Check value not exist.",
        ],
    );
    assert!(
        stdout.contains("partition_index : "),
        "single-key commands show where the key lives"
    );

    // A TTL of one second expires.
    wait_until("the 1 s TTL to expire", Duration::from_secs(10), || async {
        let out = cluster.shell(&[], "use orders\nget alice temp\n");
        if out.stdout.contains("Not found") {
            Ok(())
        } else {
            Err(out.stdout)
        }
    })
    .await;

    // app_stat counts what each partition's primary served: three more puts and a get.
    let totals = |text: &str| -> Vec<u64> {
        let line = text
            .lines()
            .find(|l| l.starts_with("(total)"))
            .unwrap_or_else(|| panic!("no total row in {text}"));
        line.split_whitespace()
            .skip(1)
            .take(9)
            .map(|n| n.parse().unwrap())
            .collect()
    };
    let before = cluster.shell_exec("app_stat");
    assert!(
        before.success && before.stdout.contains("MULTI_GET") && before.stdout.contains("orders"),
        "{before:?}"
    );
    let out = cluster.shell(&[], "use orders\nset s1 k v\nset s2 k v\nset s3 k v\nget s1 k\n");
    assert!(out.success, "{out:?}");
    let after = cluster.shell_exec("app_stat -a orders");
    assert!(after.success, "{after:?}");
    let (before, after_counts) = (totals(&before.stdout), totals(&after.stdout));
    assert_eq!(after_counts[2], before[2] + 3, "PUT: {}", after.stdout);
    assert_eq!(after_counts[0], before[0] + 1, "GET: {}", after.stdout);
    assert_eq!(
        after
            .stdout
            .lines()
            .filter(|l| l.split_whitespace().next().is_some_and(|w| w.parse::<u32>().is_ok()))
            .count(),
        4,
        "one row per partition: {}",
        after.stdout
    );
    let out = cluster.shell_exec("app_stat -a nosuch");
    assert!(
        !out.success && out.stderr.contains("table nosuch does not exist"),
        "{out:?}"
    );

    // Errors name the problem and fail the run.
    let out = cluster.shell(&[], "use nosuch\n");
    assert!(
        !out.success && out.stderr.contains("ERR_APP_NOT_EXIST: table 'nosuch' does not exist"),
        "{out:?}"
    );
    let out = cluster.shell(&[], "get a b\n");
    assert!(!out.success && out.stderr.contains("no table selected"), "{out:?}");
    let big = "x".repeat(5 * 1024 * 1024);
    let out = cluster.shell(&[], &format!("use orders\nset big v {big}\n"));
    assert!(
        !out.success && out.stderr.contains("ERR_VALUE_TOO_LARGE"),
        "{}",
        out.stderr
    );
    let out = cluster.shell(&[], "frobnicate\n");
    assert!(!out.success && out.stderr.contains("frobnicate"), "{out:?}");

    // Drop: gone from listings, and the data is unreachable.
    let counted = cluster.shell(&[], "use orders\ncount_data\n").stdout;
    let rows_before_drop = counted
        .lines()
        .find(|l| l.starts_with("row_count"))
        .unwrap_or_else(|| panic!("no row count in {counted}"))
        .to_string();
    let out = cluster.shell_exec("drop orders");
    assert!(out.success, "{out:?}");
    let ls = cluster.shell_exec("ls");
    assert!(!ls.stdout.contains("orders"), "{}", ls.stdout);
    let ls_all = cluster.shell_exec("ls -a");
    assert!(ls_all.stdout.contains("DROPPED"), "{}", ls_all.stdout);
    let out = cluster.shell(&[], "use orders\n");
    assert!(!out.success && out.stderr.contains("ERR_APP_NOT_EXIST"), "{out:?}");
    // Every replica server sets the dropped table's replicas aside.
    wait_until(
        "replicas of the dropped table set aside",
        Duration::from_secs(20),
        || async {
            let mut set_aside = 0;
            for i in 0..3 {
                let dir = cluster.data_dir().join(format!("replica{i}/replica"));
                set_aside += std::fs::read_dir(&dir)
                    .map(|d| {
                        d.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".gar"))
                            .count()
                    })
                    .unwrap_or(0);
            }
            if set_aside == 12 {
                Ok(())
            } else {
                Err(format!("{set_aside} of 12 replicas set aside"))
            }
        },
    )
    .await;

    // Recall: refused for an unknown id and while another table has the name; under a new name
    // its replicas come back from where they were set aside, with their data.
    let dropped = client.list_tables(true).await.unwrap();
    let id = dropped
        .iter()
        .find(|t| t.info.app_name == "orders")
        .unwrap()
        .info
        .app_id;
    let out = cluster.shell_exec("recall 999");
    assert!(
        !out.success && out.stderr.contains("no table has app id 999"),
        "{out:?}"
    );
    assert!(cluster.shell_exec("create orders -p 4 -r 3").success);
    let out = cluster.shell_exec(&format!("recall {id}"));
    assert!(
        !out.success && out.stderr.contains("a table named orders exists"),
        "{out:?}"
    );
    let out = cluster.shell_exec(&format!("recall {id} orders_old"));
    assert!(out.success && out.stdout.contains("recall app orders_old"), "{out:?}");
    wait_fully_healthy(&client, "orders_old", Duration::from_secs(60)).await;
    let out = cluster.shell(&[], "use orders_old\nget s1 k\ncount_data\n");
    assert!(out.success, "{out:?}");
    assert_lines(&out.stdout, &["\"v\"", rows_before_drop.trim_end()]);
    let out = cluster.shell_exec(&format!("recall {id}"));
    assert!(!out.success && out.stderr.contains("is not dropped"), "{out:?}");
}
