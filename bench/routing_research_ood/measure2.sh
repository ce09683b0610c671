cd /work/wt-ood
C=../shared/datasets/clinc150
while kill -0 30521 2>/dev/null; do sleep 2; done
tail -c 600 /tmp/ood/m_test.json >> /tmp/ood/measure.log; echo >> /tmp/ood/measure.log
run() { name=$1; shift; echo "== $name: $*" >> /tmp/ood/measure.log; nice .venv/bin/python manage.py routing_eval "$@" --json > /tmp/ood/m_$name.json 2>/tmp/ood/m_$name.err; tail -c 1500 /tmp/ood/m_$name.json >> /tmp/ood/measure.log; echo >> /tmp/ood/measure.log; }
run hwu13 --examples /tmp/ood/hwu/examples_small13.jsonl --cases /tmp/ood/hwu/cases.jsonl
run ldo --examples $C/examples.jsonl --cases $C/dev_cases.jsonl --leave-domains-out 2 --rotations 3
run hwu --examples /tmp/ood/hwu/examples.jsonl --cases /tmp/ood/hwu/cases.jsonl
run t10k --examples /tmp/ood/clinc10k.jsonl --cases $C/dev_cases.jsonl --retrain
echo DONE >> /tmp/ood/measure.log
