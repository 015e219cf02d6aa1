rule gold_eval:
    input:
        checkpoint="results/{dataset}/{model}/seed{seed}/checkpoint.pt",
        gold="results/{dataset}/data/gold.parquet",
        events="results/{dataset}/data/events.parquet",
    output:
        gold_eval="results/{dataset}/{model}/seed{seed}/gold_eval.json",
        predictions="results/{dataset}/{model}/seed{seed}/gold_predictions.parquet",
    params:
        training=training_config,
        meta=run_meta,
    conda:
        "../envs/ctrbench.yaml"
    container:
        container_image("gpu")
    log:
        "results/{dataset}/{model}/seed{seed}/logs/gold_eval.log",
    benchmark:
        "results/{dataset}/{model}/seed{seed}/benchmarks/gold_eval.tsv"
    threads: job_resources("gold_eval")["threads"]
    resources:
        mem_mb=job_resources("gold_eval")["mem_mb"],
        runtime=job_resources("gold_eval")["runtime"],
        gpu=job_resources("gold_eval").get("gpu", 0),
    script:
        "../workflow_scripts/gold_eval.py"
