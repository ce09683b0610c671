cd /work/wt-ood
C=../shared/datasets/clinc150
run() { name=$1; shift; echo "== $name: $*" >> /tmp/ood/measure.log; nice .venv/bin/python manage.py routing_eval "$@" --json > /tmp/ood/m_$name.json 2>/tmp/ood/m_$name.err; tail -c 600 /tmp/ood/m_$name.json >> /tmp/ood/measure.log; echo >> /tmp/ood/measure.log; }
run dev --examples $C/examples.jsonl --cases $C/dev_cases.jsonl
run test --clinc-full /tmp/clinc_full/data_full.json --split test
run hwu --examples /tmp/ood/hwu/examples.jsonl --cases /tmp/ood/hwu/cases.jsonl
run hwu13 --examples /tmp/ood/hwu/examples_small13.jsonl --cases /tmp/ood/hwu/cases.jsonl
run ldo --examples $C/examples.jsonl --cases $C/dev_cases.jsonl --leave-domains-out 2 --rotations 5
run t10k --examples /tmp/ood/clinc10k.jsonl --cases $C/dev_cases.jsonl --retrain
echo DONE >> /tmp/ood/measure.log
