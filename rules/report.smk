rule report:
    input:
        train_metrics=[f"results/{d}/{m}/train_metrics.json" for d, m in benchmark_pairs()],
        gold_evals=[f"results/{d}/{m}/gold_eval.json" for d, m in benchmark_pairs()],
        manifests=[f"results/{d}/data/manifest.json" for d in config["benchmark"]["datasets"]],
    output:
        report="results/report.html",
    params:
        config=config,
    conda:
        "../envs/ctrbench.yaml"
    log:
        "results/logs/report.log",
    threads: job_resources("report")["threads"]
    resources:
        mem_mb=job_resources("report")["mem_mb"],
        runtime=job_resources("report")["runtime"],
    script:
        "../workflow_scripts/report.py"
