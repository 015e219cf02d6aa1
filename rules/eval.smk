rule gold_eval:
    input:
        checkpoint=f"{RUN}/checkpoint.pt",
        gold="results/{dataset}/data/gold.parquet",
        events="results/{dataset}/data/events.parquet",
    output:
        gold_eval=f"{RUN}/gold_eval.json",
        predictions=f"{RUN}/{PREDICTIONS_FILE}",
    params:
        training=training_config,
        meta=run_meta,
    conda:
        "../envs/ctrbench.yaml"
    container:
        container_image("gpu")
    log:
        f"{RUN}/logs/gold_eval.log",
    benchmark:
        f"{RUN}/benchmarks/gold_eval.tsv"
    threads: job_resources("gold_eval")["threads"]
    resources:
        mem_mb=job_resources("gold_eval")["mem_mb"],
        runtime=job_resources("gold_eval")["runtime"],
        gpu=job_resources("gold_eval").get("gpu", 0),
    script:
        "../workflow_scripts/gold_eval.py"
