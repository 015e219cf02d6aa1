rule report:
    input:
        unpack(all_results),
    output:
        report="results/report.html",
    params:
        config=config,
        missing=[],
    conda:
        "../envs/ctrbench.yaml"
    container:
        container_image("cpu")
    log:
        "results/logs/report.log",
    threads: job_resources("report")["threads"]
    resources:
        mem_mb=job_resources("report")["mem_mb"],
        runtime=job_resources("report")["runtime"],
    script:
        "../workflow_scripts/report.py"


rule partial_report:
    """The report from whatever finished (e.g. after `--keep-going`), naming the missing models."""
    input:
        unpack(finished_results),
    output:
        report="results/report_partial.html",
    params:
        config=config,
        missing=lambda wc: [list(run) for run in unfinished_runs()],
    conda:
        "../envs/ctrbench.yaml"
    container:
        container_image("cpu")
    log:
        "results/logs/partial_report.log",
    threads: job_resources("report")["threads"]
    resources:
        mem_mb=job_resources("report")["mem_mb"],
        runtime=job_resources("report")["runtime"],
    script:
        "../workflow_scripts/report.py"
