# ctrbench: every dataset preprocessing, model training and gold evaluation is a rule with file
# outputs; the final rule renders results/report.html.
#   snakemake --cores all results/report.html


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/eval.smk"
include: "rules/report.smk"


rule all:
    input:
        "results/report.html",
    default_target: True
