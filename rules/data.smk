rule generate_synthetic:
    output:
        raw="results/{dataset}/raw/data.txt",
    params:
        format=lambda wc: dataset_config(wc)["format"],
        synthetic=lambda wc: dataset_config(wc)["synthetic"],
    conda:
        "../envs/ctrbench.yaml"
    container:
        container_image("cpu")
    log:
        "results/{dataset}/logs/generate_synthetic.log",
    resources:
        mem_mb=job_resources("preprocess")["mem_mb"],
        runtime=job_resources("preprocess")["runtime"],
    script:
        "../workflow_scripts/generate_synthetic.py"


# formats whose raw input is a directory (aliexpress): the generator writes the directory
rule generate_synthetic_directory:
    output:
        raw=directory("results/{dataset}/raw/data"),
    params:
        format=lambda wc: dataset_config(wc)["format"],
        synthetic=lambda wc: dataset_config(wc)["synthetic"],
    conda:
        "../envs/ctrbench.yaml"
    container:
        container_image("cpu")
    log:
        "results/{dataset}/logs/generate_synthetic.log",
    resources:
        mem_mb=job_resources("preprocess")["mem_mb"],
        runtime=job_resources("preprocess")["runtime"],
    script:
        "../workflow_scripts/generate_synthetic.py"


rule preprocess:
    input:
        raw=raw_input,
    output:
        train="results/{dataset}/data/train.parquet",
        valid="results/{dataset}/data/valid.parquet",
        gold="results/{dataset}/data/gold.parquet",
        events="results/{dataset}/data/events.parquet",
        feature_map="results/{dataset}/data/feature_map.json",
        manifest="results/{dataset}/data/manifest.json",
    params:
        dataset=data_settings,
        raw=raw_path,
    conda:
        "../envs/ctrbench.yaml"
    container:
        container_image("cpu")
    log:
        "results/{dataset}/logs/preprocess.log",
    threads: job_resources("preprocess")["threads"]
    resources:
        mem_mb=job_resources("preprocess")["mem_mb"],
        runtime=job_resources("preprocess")["runtime"],
    script:
        "../workflow_scripts/preprocess.py"
