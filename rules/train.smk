rule train:
    input:
        train="results/{dataset}/data/train.parquet",
        valid="results/{dataset}/data/valid.parquet",
        events="results/{dataset}/data/events.parquet",
        feature_map="results/{dataset}/data/feature_map.json",
        init=init_checkpoint,
    output:
        checkpoint=f"{RUN}/checkpoint.pt",
        metrics=f"{RUN}/train_metrics.json",
        train_log=f"{RUN}/train_log.jsonl",
    params:
        model=model_config,
        training=training_config,
        init=init_settings,
        seed=lambda wc: int(wc.seed),
        meta=run_meta,
        downstream=training_downstream,
    conda:
        "../envs/ctrbench.yaml"
    container:
        container_image("gpu")
    log:
        f"{RUN}/logs/train.log",
    benchmark:
        f"{RUN}/benchmarks/train.tsv"
    threads: job_resources("train")["threads"]
    retries: job_resources("train").get("retries", 0)
    resources:
        mem_mb=job_resources("train")["mem_mb"],
        runtime=job_resources("train")["runtime"],
        gpu=job_resources("train").get("gpu", 0),
    script:
        "../workflow_scripts/train.py"
