import sys, time, numpy as np
sys.path.insert(0,'/tmp/routing'); from common import load; from minilm_np import MiniLMEncoder
from scipy.special import erf
X,y,Xd,yd=load()
enc=MiniLMEncoder()
def fwd_layers(self, ids, mask):
    B,T=ids.shape; H=self.nh; d=self.dim//H
    x=(self.wemb[ids]+self.pemb[:T][None]+self.temb0).reshape(B*T,self.dim); x=self._ln(x,self.eln)
    bias=((1.0-mask)*-1e9)[:,None,None,:].astype(np.float32); scale=np.float32(1/np.sqrt(d))
    m=mask[:,:,None]; outs=[]
    def pool(x):
        xx=x.reshape(B,T,self.dim); return (xx*m).sum(1)/m.sum(1)
    outs.append(pool(x))
    for L in self.layers:
        qkv=(x@L['wqkv']+L['bqkv']).reshape(B,T,3,H,d).transpose(2,0,3,1,4); q,k,v=qkv
        s=(q@k.transpose(0,1,3,2))*scale+bias; s=np.exp(s-s.max(-1,keepdims=True)); s/=s.sum(-1,keepdims=True)
        a=(s@v).transpose(0,2,1,3).reshape(B*T,self.dim)
        x=self._ln(x+a@L['wo']+L['bo'],L['ln1']); h=x@L['wi']+L['bi']; h=0.5*h*(1+erf(h*np.float32(0.7071067811865476)))
        x=self._ln(x+h@L['wo2']+L['bo2'],L['ln2']); outs.append(pool(x))
    return np.concatenate(outs,1)
def encode(texts,bs=64):
    enc_=[enc.tok.encode(t) for t in texts]; order=np.argsort([len(e) for e in enc_],kind='stable')
    out=np.zeros((len(texts),7*384),np.float32)
    for s in range(0,len(order),bs):
        idx=order[s:s+bs]; T=max(len(enc_[i]) for i in idx)
        ids=np.zeros((len(idx),T),np.int64); mask=np.zeros((len(idx),T),np.float32)
        for r,i in enumerate(idx): ids[r,:len(enc_[i])]=enc_[i]; mask[r,:len(enc_[i])]=1
        out[idx]=fwd_layers(enc,ids,mask)
    return out
t=time.time(); np.save('cache/layers_dev.npy',encode(Xd)); print('dev',time.time()-t,flush=True)
t=time.time(); np.save('cache/layers_train.npy',encode(X)); print('train',time.time()-t,flush=True)
